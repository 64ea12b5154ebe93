# gcops --mode concurrent, step 2 (inside the verified write-refused window): every link under
# repositories/ newer than the marker, and what it keeps alive. Written to "$2/protected":
# - the digest each new link names, from its content and from its path (a link a killed request
#   left empty still names its digest in its path, except tags/<t>/current/link, whose manifest
#   the same request linked under tags/<t>/index/ first);
# - for a link under _manifests/: every sha256 digest its manifest blob mentions (config, layers,
#   index/list children, subject: anything that looks like a digest), and, recursively, those of
#   every such digest that is a manifest of the same repository.
#   $1 storage root   $2 work dir   $3 run id
# Prints links, manifests_read, protected, bad_links; unreadable=<digest> for a manifest blob that
# could not be read (then nothing may be swept: what it keeps alive is unknown).
set -u
ROOT=$1 W=$2 RUN=$3
MARK="$ROOT/.gcops-mark-$RUN"
V2="$ROOT/docker/registry/v2"
[ -f "$MARK" ] || { echo "marker_missing=$MARK"; exit 30; }
[ -d "$W" ] || { echo "workdir_missing=$W"; exit 31; }
: > "$W/links"
if [ -d "$V2/repositories" ]; then
  (cd "$V2/repositories" && find . -type f -name link -newer "$MARK") > "$W/links" ||
    { echo "find_failed=yes"; exit 32; }
fi
awk -v V2="$V2" -v OUT="$W/protected" '
function valid(d) { return d ~ /^sha256:[0-9a-f]+$/ && length(d) == 71 }
function protect(d) { if (!(d in prot)) { prot[d] = 1; print d > OUT; np++ } }
function want(repo, d) { if (!((repo SUBSEP d) in queued)) { queued[repo SUBSEP d] = 1; qr[++qn] = repo; qd[qn] = d } }
function read_manifest(repo, d,    f, line, c, got, ref, rl) {
  f = V2 "/blobs/sha256/" substr(d, 8, 2) "/" substr(d, 8) "/data"
  c = ""; got = 0
  while ((getline line < f) > 0) { c = c line "\n"; got = 1 }
  close(f)
  if (!got) { print "unreadable=" d; bad_read++; return }
  nread++
  while (match(c, /sha256:[0-9a-f]+/)) {
    ref = substr(c, RSTART, RLENGTH); c = substr(c, RSTART + RLENGTH)
    if (!valid(ref)) continue
    protect(ref)
    rl = V2 "/repositories/" repo "/_manifests/revisions/sha256/" substr(ref, 8) "/link"
    if ((getline line < rl) >= 0) { close(rl); want(repo, ref) }
  }
}
{
  path = substr($0, 3); nlinks++
  repo = path; manifest = 0
  if (index(path, "/_manifests/") > 0) { repo = substr(path, 1, index(path, "/_manifests/") - 1); manifest = 1 }
  else if (index(path, "/_layers/") > 0) repo = substr(path, 1, index(path, "/_layers/") - 1)
  else { repo = "" }
  # the digest in the path: .../sha256/<hex>/link
  n = split(path, part, "/")
  if (n >= 3 && part[n - 2] == "sha256") {
    d = "sha256:" part[n - 1]
    if (valid(d)) { protect(d); if (manifest) want(repo, d) }
  }
  content = ""
  f = V2 "/repositories/" path
  if ((getline content < f) < 0) content = ""
  close(f)
  if (valid(content)) { protect(content); if (manifest) want(repo, content) }
  else if (!(n >= 3 && part[n - 2] == "sha256")) { bad++ }
}
END {
  for (i = 1; i <= qn; i++) read_manifest(qr[i], qd[i])
  printf "links=%d\nmanifests_read=%d\nprotected=%d\nbad_links=%d\nunreadable_count=%d\n", nlinks, nread, np, bad, bad_read
}' "$W/links" || { echo "delta_failed=yes"; exit 33; }
