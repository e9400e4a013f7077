#!/usr/bin/env bash
# Installs the Debian packages mailguard needs, only those missing. Usage: system-deps.sh run|test|bench
set -euo pipefail
want=()
probe=$(mktemp -d)
python3 -m venv "$probe/v" >/dev/null 2>&1 || want+=(python3-venv)   # Debian splits ensurepip out
rm -rf "$probe"
[ -e /usr/lib/x86_64-linux-gnu/libmagic.so.1 ] || [ -e /usr/lib/aarch64-linux-gnu/libmagic.so.1 ] \
  || ldconfig -p 2>/dev/null | grep -q libmagic.so.1 || want+=(libmagic1)
command -v 7zz >/dev/null || command -v 7z >/dev/null || want+=(7zip)   # RAR attachments (rarfile)
if [ "${1:-run}" = test ]; then
  command -v qpdf >/dev/null || want+=(qpdf)   # the attachment tests make encrypted files with
  command -v gpg >/dev/null || want+=(gnupg)   # qpdf, gpg and zip, as a teacher's PC would
  command -v zip >/dev/null || want+=(zip)
  command -v uuencode >/dev/null || want+=(sharutils)
  [ -x /usr/sbin/clamd ] || want+=(clamav-daemon)   # the antivirus test runs its own clamd
  # LibreOffice saves the password-protected OpenDocument files (tests/tools/lo_encrypt.py)
  [ -x /usr/bin/soffice ] && [ -e /usr/lib/libreoffice/program/libsclo.so ] \
    || want+=(libreoffice-writer-nogui libreoffice-calc-nogui)
  /usr/bin/python3 -c "import uno" 2>/dev/null || want+=(python3-uno)
  [ -x /usr/sbin/postfix ] && [ -x /usr/sbin/smtp-source ] || want+=(postfix)
  command -v swaks >/dev/null || want+=(swaks)
  [ -e /usr/share/dict/british-english ] || want+=(wbritish)   # wordlists lint's dictionary
  [ -x /usr/bin/chromium ] || want+=(chromium)   # the review desk's browser tests (Playwright)
  command -v systemd-analyze >/dev/null || want+=(systemd)   # verifies deploy/mailguard.service
  # The shared-store tests start their own PostgreSQL server (initdb, pg_ctl) on loopback
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || want+=(postgresql)
  [ -x /usr/sbin/haproxy ] || want+=(haproxy)   # two nodes behind a balancer (test_cluster_failover)
fi
if [ "${1:-run}" = bench ]; then   # the tests' packages, and a C milter to compare with
  "$0" test
  [ -x /usr/sbin/opendkim ] || want+=(opendkim)
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
# The tests start their own PostgreSQL: the cluster the package makes is stopped and kept
# from starting again (it would hold port 5432 and memory for nothing).
if [[ " ${want[*]} " == *" postgresql "* ]] && command -v pg_lsclusters >/dev/null; then
  pg_lsclusters -h 2>/dev/null | while read -r version name _; do
    $SUDO pg_ctlcluster "$version" "$name" stop >/dev/null 2>&1 || true
    echo disabled | $SUDO tee "/etc/postgresql/$version/$name/start.conf" >/dev/null || true
  done
fi
# The tests and the bench start their own HAProxy and OpenDKIM: the packages' system
# services are not wanted.
for service in opendkim haproxy; do
  if [[ " ${want[*]} " == *" $service "* ]]; then
    if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
      $SUDO systemctl disable --now "$service" >/dev/null 2>&1 || true
    else
      $SUDO service "$service" stop >/dev/null 2>&1 || true
    fi
  fi
done
