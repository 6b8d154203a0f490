#!/bin/sh
# Health check used by docker-compose: `apb admin node health` exits 0 only when this node is an Up member and
# does its part (a router: at least apb.router.expected-hosts hosts registered; a gpu-host: registered with it).
# Its text (each check, and why one failed) lands in `docker inspect`'s health log. Any failure is exit 1, the
# only "unhealthy" code Docker defines (the shell's own 2 and 3, usage and cannot connect, are reserved there).
# Asks the node's own admin endpoint (loopback inside the container, so no token needed).
apb admin --endpoint "127.0.0.1:${APB_ADMIN_PORT:-9110}" node health || exit 1
