# The identity of a storage, seen the same from every host that mounts it.
# shellcheck shell=sh
# "$1": the storage root (the registry's rootdirectory); "$2": an id to create
# when the storage has none yet (gcops-storage-<32 hex>), or "" to only read.
# The id lives in a symlink <root>/gcops-storage-id whose target is the id:
# beside the registry's docker/ tree (the registry never reads it), created
# atomically (ln -s fails when it exists, also on NFS, so two first contacts
# agree), and it takes no disk blocks (a short symlink lives in its inode), so
# du-style measurements of the storage do not move. Prints storage_id=<id>, or
# storage_id= when there is none; exits non-zero with a line on stderr on error.
set -u
root=${1:?storage_id.sh: no storage root given}
new=${2-}
link="$root/gcops-storage-id"
[ -d "$root" ] || { echo "storage_id: $root is not a directory" >&2; exit 3; }
if [ -e "$link" ] && [ ! -L "$link" ]; then
    echo "storage_id: $link is not a symlink; not gcops'" >&2
    exit 4
fi
if [ -n "$new" ] && [ ! -L "$link" ]; then
    ln -s "$new" "$link" 2>/dev/null || [ -L "$link" ] || {
        if [ -w "$root" ]; then echo "storage_id: cannot create $link" >&2
        else echo "storage_id: cannot create $link: permission denied for this user (set sudo = true for this" \
                  "instance, or connect as a user who may write the storage)" >&2
        fi
        exit 4
    }
fi
if [ ! -L "$link" ]; then
    echo "storage_id="
    exit 0
fi
if command -v readlink >/dev/null 2>&1; then
    id=$(readlink "$link") || exit 4
else
    id=$(ls -ld "$link" | sed 's/.* -> //') || exit 4
fi
case $id in
    gcops-storage-*) echo "storage_id=$id" ;;
    *) echo "storage_id: $link does not hold a gcops storage id" >&2; exit 4 ;;
esac
