# One HTTP request made by curl on the host; prints the answer's headers and body (curl -i).
# shellcheck shell=sh
# Everything curl is told (URL, method, headers, credentials) comes on stdin as a curl
# config (-K -), so no secret is ever on a command line. Exit 127: no curl on the host.
CURL=$(command -v curl 2>/dev/null || true)
if [ -z "$CURL" ] && [ -x /opt/gitlab/embedded/bin/curl ]; then CURL=/opt/gitlab/embedded/bin/curl; fi
if [ -z "$CURL" ]; then echo "gcops: curl not found on the host" >&2; exit 127; fi
exec "$CURL" -s -S -i -K -
