#!/bin/sh
# Health check used by docker-compose: ready = this node is a member with status Up.
# Asks the node's own admin endpoint (loopback inside the container, so no token needed).
exec apb admin --endpoint "127.0.0.1:${APB_ADMIN_PORT:-9110}" cluster show --json | grep -q "\"selfStatus\":\"Up\""
