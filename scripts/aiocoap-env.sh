#!/usr/bin/env bash
# Prints the path of a Python that has aiocoap with DTLSSocket (tinydtls: DTLS-PSK with
# TLS_PSK_WITH_AES_128_CCM_8, the client stack of pytradfri and Home Assistant), making it first
# if needed: a virtual environment of Debian's python3 with pinned versions from PyPI, in the
# cache (${XDG_CACHE_HOME:-$HOME/.cache}/tradfri-bridge/), kept between runs and keyed by the
# versions. The simulator's interop test runs Tests/Scripts/aiocoap_client.py with it.
#
# DTLSSocket has no wheels on PyPI: its sdist builds tinydtls (autoconf, automake, a C compiler)
# and a Cython extension (python3-dev); scripts/install-dependencies.sh installs those.
# Progress goes to standard error; standard output is only the path.
set -euo pipefail

aiocoap=0.4.17
dtlssocket=0.2.3
# Build requirements of DTLSSocket, pinned too (it is built without build isolation).
cython=3.0.11
setuptools=75.8.0
wheel=0.45.1

python=/usr/bin/python3
version=$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
cache="${XDG_CACHE_HOME:-$HOME/.cache}/tradfri-bridge"
environment="$cache/aiocoap-$aiocoap-dtlssocket-$dtlssocket-cython-$cython-debian-python$version"
mkdir -p "$cache"

# One maker at a time (tests may ask in parallel); the others wait and use its result.
exec 9>"$environment.lock"
flock 9
if [ ! -e "$environment/ready" ]; then
  rm -rf "$environment"
  {
    echo "aiocoap-env: making $environment"
    "$python" -m venv "$environment"
    "$environment/bin/pip" install --quiet --disable-pip-version-check \
      "cython==$cython" "setuptools==$setuptools" "wheel==$wheel"
    "$environment/bin/pip" install --quiet --disable-pip-version-check --no-build-isolation \
      "DTLSSocket==$dtlssocket" "aiocoap==$aiocoap"
    "$environment/bin/python" -c 'import aiocoap.transports.tinydtls, DTLSSocket'
  } >&2
  touch "$environment/ready"
fi
echo "$environment/bin/python"
