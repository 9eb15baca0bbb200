#!/bin/sh
# The healer hook: here it only records what it was told; a real one would page someone or
# clean up (free a port, remove a stale lock) before the supervisor's next restart.
echo "healer: $SOVEREIGN_SERVICE went down ($SOVEREIGN_REASON, exit status ${SOVEREIGN_EXIT_STATUS:-none})"
echo "healer: last log lines in $SOVEREIGN_LOG_FILE, health snapshot in $SOVEREIGN_HEALTH_FILE"
tail -n 3 "$SOVEREIGN_LOG_FILE"
