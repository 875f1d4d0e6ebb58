#!/bin/bash
# start the spike hub in its own session; writes state/ports.env and state/hub.pgid
cd /tmp/voila-spike
ports=$(.venv/bin/python -c "
import socket
s=[socket.socket() for _ in range(6)]
[x.bind(('127.0.0.1',0)) for x in s]
print(' '.join(str(x.getsockname()[1]) for x in s))")
set -- $ports
cat > state/ports.env <<E
export SPIKE_PORT_PUBLIC=$1 SPIKE_PORT_HUB=$2 SPIKE_PORT_PROXY=$3 SPIKE_PORT_API=$4 SPIKE_PORT_DASH=$5 SPIKE_PORT_DASHCOLD=$6
export SPIKE_PASSWORD=spike-password-123
E
. state/ports.env
export CONFIGPROXY_AUTH_TOKEN=$(head -c16 /dev/urandom | xxd -p)
set -m; setsid .venv/bin/jupyterhub -f hub/jupyterhub_config.py > state/hub.log 2>&1 < /dev/null &
echo $! > state/hub.pid
