#!/bin/sh
# Health check used by docker-compose: `apb admin node health` exits 0 only when this node is an Up member and
# does its part (a router: at least apb.router.expected-hosts hosts registered; a gpu-host: registered with it).
# Asks the node's own admin endpoint (loopback inside the container, so no token needed).
exec apb admin --endpoint "127.0.0.1:${APB_ADMIN_PORT:-9110}" node health >/dev/null
