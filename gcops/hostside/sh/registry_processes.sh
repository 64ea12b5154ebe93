# Registry processes serving the config "$1", with their start times on the boot clock.
# Prints: uptime=<seconds since boot>, clk_tck=<ticks per second>, then one
# process=<pid> <start ticks since boot> per process whose arguments include
# "serve" and exactly "$1" (how Debian's unit, Omnibus' runit and `registry serve`
# start it) and which sees the same file under that path. Comparing start ticks with an uptime read before the config was written
# tells whether the registry demonstrably restarted since; no wall clock involved.
# With a mark "$2" (an earlier uptime= value, taken right after the config was written)
# it also prints registry_restarted=yes|no|unknown: yes when registry processes run and
# every one started after the mark, no when one is older, unknown when none is found.
CFG=$1
MARK=${2:-}
echo "uptime=$(cut -d ' ' -f 1 /proc/uptime)"
tck=$(getconf CLK_TCK 2>/dev/null || true)
tck=${tck:-100}
echo "clk_tck=$tck"
procs=""
# The process must see the very same file as "$CFG" (through its own root): other registries
# on the machine (containers, other mount namespaces) may serve a config of the same path.
ours=$(stat -L -c '%d:%i' "$CFG" 2>/dev/null)
# grep -l narrows /proc to the few processes whose arguments mention the config at all
for f in $(grep -l -F -e "$CFG" /proc/[0-9]*/cmdline 2>/dev/null); do
  d=${f%/cmdline}
  args=$(tr '\000' '\n' < "$d/cmdline" 2>/dev/null) || continue
  printf '%s\n' "$args" | grep -qxF serve || continue
  printf '%s\n' "$args" | grep -qxF -- "$CFG" || continue
  [ -n "$ours" ] && [ "$(stat -L -c '%d:%i' "$d/root$CFG" 2>/dev/null)" = "$ours" ] || continue
  # field 22 of stat, counted after the ")" that ends the command name
  start=$(sed 's/^.*) //' "$d/stat" 2>/dev/null | cut -d ' ' -f 20)
  [ -n "$start" ] && procs="${procs}process=${d#/proc/} $start
"
done
printf '%s' "$procs"
if [ -n "$MARK" ]; then
  printf '%s' "$procs" | awk -v m="$MARK" -v t="$tck" '
    /^process=/ { n++; if ($2 / t <= m + 0) old++ }
    END { if (n == 0) print "registry_restarted=unknown"; else if (old) print "registry_restarted=no"; else print "registry_restarted=yes" }'
fi
exit 0
