# Smoke script for gcops.hostside.scripts: prints each argument on its own line, untouched.
for a in "$@"; do printf '%s\n' "$a"; done
