#!/usr/bin/env bash
# Installs the Debian packages mailguard needs, only those missing. Usage: system-deps.sh run|test
set -euo pipefail
want=()
python3 -c "import ensurepip, venv" 2>/dev/null || want+=(python3-venv)
[ -e /usr/lib/x86_64-linux-gnu/libmagic.so.1 ] || [ -e /usr/lib/aarch64-linux-gnu/libmagic.so.1 ] \
  || ldconfig -p 2>/dev/null | grep -q libmagic.so.1 || want+=(libmagic1)
if [ "${1:-run}" = test ]; then
  command -v postfix >/dev/null || want+=(postfix)
  command -v swaks >/dev/null || want+=(swaks)
  command -v smtp-source >/dev/null || want+=(postfix)
fi
[ ${#want[@]} -eq 0 ] && exit 0
echo "Installing Debian packages: ${want[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
# Postfix is only a test peer here: never let its package set up a system mail server.
echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
  $(printf '%s\n' "${want[@]}" | sort -u) >/dev/null
