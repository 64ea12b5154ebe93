"""Pure parts of the safe --delete-untagged."""
import json
import subprocess

from gcops.registry.untagged import (RepoManifests, candidates, delete_input, freed_by, index_contents_command,
                                     listing_command,
                                     parse_index_contents, parse_listing, parse_refs, protected, refs_command)

A, B, C, D, E, L1, L2 = (ch * 64 for ch in "abcdef9")


def test_parse_listing_splits_revisions_and_tags():
    text = "\n".join([
        f"repositories/team/app/_manifests/revisions/sha256/{A}/link\tsha256:{A}",
        f"repositories/team/app/_manifests/revisions/sha256/{B}/link\tsha256:{B}",
        f"repositories/team/app/_manifests/tags/v1/current/link\tsha256:{B}",
        "repositories/Bad Name/_manifests/revisions/sha256/x/link\tsha256:zz",
    ])
    repos = parse_listing(text)
    assert set(repos) == {"team/app"}
    assert repos["team/app"].revisions == {A, B} and repos["team/app"].tagged == {B}


def test_children_of_tagged_indexes_are_protected_recursively():
    repo = RepoManifests(revisions={A, B, C, D, E}, tagged={A})
    children = {A: {B, C}, C: {D}}            # A index -> B, C(index) -> D
    assert protected(repo, children) == {A, B, C, D}
    assert candidates({"r": repo}, children) == {"r": {E}}


def test_untagged_index_and_its_children_go_together():
    repo = RepoManifests(revisions={A, B, C}, tagged=set())
    assert candidates({"r": repo}, {A: {B}}) == {"r": {A, B, C}}


def test_index_contents_parsed_from_json():
    body = json.dumps({"schemaVersion": 2, "manifests": [{"digest": f"sha256:{B}"}, {"digest": "bogus"}]})
    assert parse_index_contents(f"{A}\t{body}\n{C}\tnot json") == {A: {B}}


def test_freed_by_keeps_shared_layers():
    repos = {"r": RepoManifests(revisions={A, B}, tagged={B})}
    refs = {A: {L1, L2}, B: {L2}}
    assert freed_by({"r": {A}}, repos, refs) == {A, L1}


def test_delete_input_validates_names():
    data = delete_input({"team/app": {A, "../../etc"}, "../evil": {B}})
    assert data == f"team/app\t{A}\n".encode()


def test_awk_commands_read_real_blob_files(tmp_path):
    blobs = tmp_path / "docker/registry/v2/blobs/sha256"
    index = json.dumps({"mediaType": "application/vnd.oci.image.index.v1+json",
                        "manifests": [{"digest": f"sha256:{B}"}]}, indent=2)
    image = json.dumps({"config": {"digest": f"sha256:{L1}"}, "layers": [{"digest": f"sha256:{L2}"}]})
    for digest, body in ((A, index), (C, image)):
        (blobs / digest[:2] / digest).mkdir(parents=True)
        (blobs / digest[:2] / digest / "data").write_text(body)
    out = subprocess.run(["sh", "-c", index_contents_command(str(tmp_path))], input=f"{A}\n{C}\n",
                         capture_output=True, text=True, check=True).stdout
    assert parse_index_contents(out) == {A: {B}}
    out = subprocess.run(["sh", "-c", refs_command(str(tmp_path))], input=f"{A}\n{C}\n",
                         capture_output=True, text=True, check=True).stdout
    assert parse_refs(out) == {A: {B}, C: {L1, L2}}


def test_listing_script_reads_revision_and_tag_links(tmp_path):
    repos = tmp_path / "docker/registry/v2/repositories"
    for repo, tag, digest in (("team/app", "v1", A), ("team/other", "x", C)):
        base = repos / repo / "_manifests"
        (base / "revisions/sha256" / digest).mkdir(parents=True)
        (base / "revisions/sha256" / digest / "link").write_text(f"sha256:{digest}")
        (base / "tags" / tag / "current").mkdir(parents=True)
        (base / "tags" / tag / "current/link").write_text(f"sha256:{digest}")
    (repos / "team/app/_manifests/revisions/sha256" / B).mkdir(parents=True)
    (repos / "team/app/_manifests/revisions/sha256" / B / "link").write_text(f"sha256:{B}")

    def listed(**kw):
        return parse_listing(subprocess.run(["sh", "-c", listing_command(str(tmp_path), **kw)],
                                            capture_output=True, text=True, check=True).stdout)

    every = listed()
    assert every["team/app"].revisions == {A, B} and every["team/app"].tagged == {A}
    assert every["team/other"].tagged == {C}
    tags = listed(tags_only=True)
    assert tags["team/app"].revisions == set() and tags["team/app"].tagged == {A}
    named = listed(repos=("team/other", "not/there", "../evil"))
    assert set(named) == {"team/other"}
