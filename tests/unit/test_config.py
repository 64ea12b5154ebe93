"""Configuration: the sample validates, every kind of mistake is reported with its key, all at once."""

import re
from pathlib import Path

import pytest

from gcops.config import (
    Config,
    ConfigError,
    Hooks,
    Settings,
    find_config_path,
    load_config,
    parse_duration,
)
from gcops.config.schema import SECTIONS
from gcops.playbooks import builtin_playbook_dir, load_playbook

REPO = Path(__file__).resolve().parents[2]

INSTANCE = """
[[instance]]
name = "gitlab-prod"
host = "gitlab.example.com"
playbook = "omnibus"
"""


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    """A fresh home directory, so ~ never depends on the machine running the tests."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home


def write_config(tmp_path: Path, text: str, name: str = "config.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def problems_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == "\n".join(caught.value.problems)
    return caught.value.problems


def problem_at(path: Path, key: str) -> str:
    """Give the one problem line reported at ``key``; fail if there is not exactly one."""
    problems = problems_of(path)
    prefix = f"{path}: at '{key}': "
    matching = [line for line in problems if line.startswith(prefix)]
    assert len(matching) == 1, problems
    return matching[0]


# --- the sample and the defaults ------------------------------------------------------------


def test_sample_config_validates():
    config = load_config(REPO / "config.sample.toml")
    assert [instance.name for instance in config.instances] == ["gitlab-prod", "registry-ha", "ci-cache"]
    assert config.instances[1].hosts == ("reg-a.example.com", "reg-b.example.com")
    assert config.instances[2].hosts == ("local",)


def test_sample_config_documents_every_key():
    text = (REPO / "config.sample.toml").read_text()
    for section, keys in SECTIONS.items():
        assert re.search(rf"^\[\[?{section}\]\]?$", text, re.M), section
        for key in keys:
            pattern = rf"^(#? ?{key} = |\[\[?{section}\.{key}\]\]?$)"  # a key, or a sub-table like [instance.vars]
            assert re.search(pattern, text, re.M), f"{section}.{key} is not in the sample"


def test_minimal_config_gets_every_default(tmp_path, home):
    config = load_config(write_config(tmp_path, INSTANCE))
    assert isinstance(config, Config)
    assert config.settings == Settings()
    assert config.hooks == Hooks()
    [instance] = config.instances
    omnibus = load_playbook(builtin_playbook_dir() / "omnibus.toml")
    assert instance.playbook == omnibus
    assert instance.vars == omnibus.vars
    assert (instance.user, instance.port, instance.sudo) == ("root", 22, False)
    assert instance.known_hosts == home / ".ssh" / "known_hosts"
    assert instance.identity_file is None  # default key absent: agent and default keys
    assert (instance.host_key_policy, instance.connect_timeout) == ("strict", 10.0)
    assert (instance.mode, instance.delete_untagged, instance.max_window) == ("readonly", False, 1800.0)
    assert instance.hosts != ("local",)


def test_default_identity_file_is_used_when_it_exists(tmp_path, home):
    key = home / ".ssh" / "id_ed25519"
    key.parent.mkdir()
    key.write_text("key")
    [instance] = load_config(write_config(tmp_path, INSTANCE)).instances
    assert instance.identity_file == key


def test_instance_overrides_ssh_and_gcops_settings(tmp_path, home):
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "prod").write_text("key")
    text = """
[gcops]
state_dir = "state"
mode = "stop"
max_window = "1h30m"
parallel = 2
playbook_dirs = []
metrics_textfile = "~/gcops.prom"
[ssh]
user = "gcops"
port = 2222
sudo = true
host_key_policy = "accept-new"
[hooks]
before = "echo start"
on_error = ""
[[instance]]
name = "prod"
hosts = ["reg-a", "reg-b"]
playbook = "distribution"
identity_file = "keys/prod"
port = 22
mode = "readonly"
delete_untagged = true
max_window = "90s"
connect_timeout = "1m"
[instance.vars]
service = "registry"
[[instance]]
name = "other"
host = "reg-c"
playbook = "distribution"
"""
    config = load_config(write_config(tmp_path, text))
    assert config.settings == Settings(
        state_dir=tmp_path / "state", mode="stop", delete_untagged=False, max_window=5400.0,
        parallel=2, playbook_dirs=(), metrics_textfile=home / "gcops.prom",
    )
    assert config.hooks == Hooks(before="echo start")
    prod, other = config.instances
    assert prod.hosts == ("reg-a", "reg-b")
    assert prod.identity_file == tmp_path / "keys" / "prod"
    assert (prod.user, prod.port, prod.sudo, prod.host_key_policy) == ("gcops", 22, True, "accept-new")
    assert (prod.mode, prod.delete_untagged, prod.max_window, prod.connect_timeout) == ("readonly", True, 90.0, 60.0)
    assert prod.vars["service"] == "registry"
    assert prod.vars["config"] == "/etc/docker/registry/config.yml"
    assert (other.port, other.mode, other.max_window) == (2222, "stop", 5400.0)
    assert other.vars["service"] == "docker-registry"


def test_user_playbook_dir_is_searched_before_builtin(tmp_path):
    folder = tmp_path / "playbooks"
    folder.mkdir()
    custom = (builtin_playbook_dir() / "omnibus.toml").read_text().replace("gitlab-ctl", "my-ctl")
    (folder / "omnibus.toml").write_text(custom)
    config = load_config(write_config(tmp_path, '[gcops]\nplaybook_dirs = ["playbooks"]\n' + INSTANCE))
    assert config.instances[0].playbook.path == folder / "omnibus.toml"
    assert config.instances[0].playbook.commands["stop"] == "my-ctl stop registry"


# --- every kind of mistake, one line naming its key ---------------------------------------

BAD = [
    # (config text, key path, fragment of the message)
    ('colour = "blue"\n' + INSTANCE, "colour", "unknown key"),
    ('[gcops]\nstatedir = "/x"\n' + INSTANCE, "gcops.statedir", "did you mean 'state_dir'"),
    ('[ssh]\nusername = "x"\n' + INSTANCE, "ssh.username", "unknown key"),
    ('[hooks]\nbefor = "x"\n' + INSTANCE, "hooks.befor", "did you mean 'before'"),
    (INSTANCE + 'colour = "x"\n', "instance[0].colour", "unknown key"),
    ("[ssh]\nport = true\n" + INSTANCE, "ssh.port", "got boolean true"),
    ('[ssh]\nport = "22"\n' + INSTANCE, "ssh.port", "expected an integer"),
    ("[ssh]\nport = 0\n" + INSTANCE, "ssh.port", "from 1 to 65535, got 0"),
    (INSTANCE + "port = 65536\n", "instance[0].port", "from 1 to 65535, got 65536"),
    ('[ssh]\nsudo = "yes"\n' + INSTANCE, "ssh.sudo", "expected a boolean"),
    ("[gcops]\nparallel = 0\n" + INSTANCE, "gcops.parallel", "1 or more, got 0"),
    ("[gcops]\nparallel = 2.5\n" + INSTANCE, "gcops.parallel", "got float 2.5"),
    ('[gcops]\nmode = "ro"\n' + INSTANCE, "gcops.mode", "expected 'readonly' or 'stop' or 'concurrent', got 'ro'"),
    ('[ssh]\nhost_key_policy = "yes"\n' + INSTANCE, "ssh.host_key_policy", "'strict' or 'accept-new'"),
    ('[gcops]\nmax_window = "soon"\n' + INSTANCE, "gcops.max_window", "invalid duration 'soon'"),
    ("[gcops]\nmax_window = 1800\n" + INSTANCE, "gcops.max_window", "expected a duration string"),
    (INSTANCE + 'connect_timeout = "0s"\n', "instance[0].connect_timeout", "longer than zero"),
    ('[gcops]\nplaybook_dirs = "/etc"\n' + INSTANCE, "gcops.playbook_dirs", "expected an array"),
    ('[gcops]\nplaybook_dirs = ["/etc", 3]\n' + INSTANCE, "gcops.playbook_dirs[1]", "got integer 3"),
    ("[gcops]\nmetrics_textfile = false\n" + INSTANCE, "gcops.metrics_textfile", "expected a path"),
    ('gcops = "x"\n' + INSTANCE, "gcops", "expected a table"),
    ("", "instance", "at least one [[instance]]"),
    ('[instance]\nname = "a"\n', "instance", "expected an array of tables"),
    (INSTANCE + INSTANCE.replace("gitlab.example.com", "other"), "instance[1].name",
     "duplicate instance name 'gitlab-prod' (also at instance[0].name)"),
    (INSTANCE.replace('name = "gitlab-prod"\n', ""), "instance[0].name", "required key is missing"),
    (INSTANCE.replace('name = "gitlab-prod"', 'name = "gitlab prod"'), "instance[0].name", "invalid value"),
    (INSTANCE.replace('playbook = "omnibus"\n', ""), "instance[0].playbook", "required key is missing"),
    (INSTANCE.replace('host = "gitlab.example.com"\n', ""), "instance[0].host", "required key is missing"),
    (INSTANCE + 'hosts = ["a"]\n', "instance[0].hosts", "either host or hosts"),
    (INSTANCE.replace('host = "gitlab.example.com"', "hosts = []"), "instance[0].hosts", "at least one host"),
    (INSTANCE.replace('host = "gitlab.example.com"', 'hosts = ["a", "b", "a"]'), "instance[0].hosts[2]",
     "listed twice"),
    (INSTANCE.replace('host = "gitlab.example.com"', 'hosts = ["a", "local"]'), "instance[0].hosts",
     "'local' can only be"),
    (INSTANCE.replace("gitlab.example.com", "root@gitlab"), "instance[0].host", "set the user in 'user'"),
    (INSTANCE.replace("gitlab.example.com", "-oProxyCommand=x"), "instance[0].host", "invalid value"),
    (INSTANCE.replace('"omnibus"', '"omnibuss"'), "instance[0].playbook", "no playbook 'omnibuss' (searched "),
    (INSTANCE + '[instance.vars]\nregistryurl = "x"\n', "instance[0].vars.registryurl",
     "playbook 'omnibus' has no var 'registryurl' (its vars: config, registry, registry_url, registry_ca_file, storage_root)"),
    (INSTANCE + "[instance.vars]\nconfig = 1\n", "instance[0].vars.config", "expected a string, got integer 1"),
    ('[ssh]\nidentity_file = "missing-key"\n' + INSTANCE, "ssh.identity_file", "cannot read identity file"),
    (INSTANCE + 'identity_file = "/nonexistent/key"\n', "instance[0].identity_file",
     "cannot read identity file /nonexistent/key"),
]


@pytest.mark.parametrize(("text", "key", "fragment"), BAD, ids=[case[1] + ":" + case[2][:30] for case in BAD])
def test_each_mistake_is_one_line_naming_file_and_key(tmp_path, text, key, fragment):
    path = write_config(tmp_path, text)
    line = problem_at(path, key)
    assert fragment in line, line
    assert "\n" not in line


def test_missing_playbook_lists_every_folder_searched(tmp_path):
    text = '[gcops]\nplaybook_dirs = ["/opt/pb", "mine"]\n' + INSTANCE.replace('"omnibus"', '"omnibuss"')
    path = write_config(tmp_path, text)
    line = problem_at(path, "instance[0].playbook")
    assert f"(searched /opt/pb, {tmp_path / 'mine'}, {builtin_playbook_dir()};" in line


def test_invalid_playbook_reports_its_own_problems_once(tmp_path):
    folder = tmp_path / "playbooks"
    folder.mkdir()
    (folder / "broken.toml").write_text('name = "broken"\nsummary = "x"\n[commands]\nrestart = "r"\n')
    text = '[gcops]\nplaybook_dirs = ["playbooks"]\n' + (INSTANCE + INSTANCE.replace("gitlab-prod", "b")).replace(
        '"omnibus"', '"broken"'
    )
    problems = problems_of(write_config(tmp_path, text))
    about_playbook = [line for line in problems if line.startswith(f"{folder / 'broken.toml'}: at ")]
    keys = sorted(line.split("'")[1] for line in about_playbook)
    assert keys == ["commands.gc", "commands.start", "commands.stop"]
    assert sum("at 'instance[0].playbook': playbook 'broken'" in line for line in problems) == 1
    assert sum("at 'instance[1].playbook': playbook 'broken'" in line for line in problems) == 1
    assert len(problems) == 5


def test_every_problem_is_reported_at_once(tmp_path):
    text = """
[gcops]
parallel = 0
[ssh]
port = true
[[instance]]
name = "a"
host = "h"
playbook = "nope"
[[instance]]
name = "a"
host = "h"
playbook = "omnibus"
mode = "fast"
"""
    path = write_config(tmp_path, text)
    problems = problems_of(path)
    keys = [line.removeprefix(f"{path}: at '").split("'")[0] for line in problems]
    assert sorted(keys) == sorted(
        ["gcops.parallel", "ssh.port", "instance[0].playbook", "instance[1].name", "instance[1].mode"]
    )


def test_malformed_toml_is_one_line_with_its_position(tmp_path):
    path = write_config(tmp_path, INSTANCE + "port = \n")
    [line] = problems_of(path)
    assert line.startswith(f"{path}: invalid TOML: ")
    assert "line 6" in line


def test_unreadable_config_is_one_line(tmp_path):
    [line] = problems_of(tmp_path / "absent.toml")
    assert line == f"{tmp_path / 'absent.toml'}: cannot read config file: No such file or directory"
    [line] = problems_of(tmp_path)
    assert line.startswith(f"{tmp_path}: cannot read config file: ")


# --- the identity file ------------------------------------------------------------------


def test_missing_default_identity_file_is_not_an_error(tmp_path, home):
    assert not (home / ".ssh" / "id_ed25519").exists()
    assert load_config(write_config(tmp_path, INSTANCE)).instances[0].identity_file is None


def test_unreadable_identity_file_is_fine_for_local_instances(tmp_path):
    text = '[ssh]\nidentity_file = "/nonexistent/key"\n' + INSTANCE.replace("gitlab.example.com", "local")
    [instance] = load_config(write_config(tmp_path, text)).instances
    assert instance.hosts == ("local",)


def test_empty_identity_file_means_no_key_file(tmp_path, home):
    key = home / ".ssh" / "id_ed25519"
    key.parent.mkdir()
    key.write_text("key")
    [instance] = load_config(write_config(tmp_path, INSTANCE + 'identity_file = ""\n')).instances
    assert instance.identity_file is None


def test_shared_unreadable_identity_file_is_reported_once(tmp_path):
    text = '[ssh]\nidentity_file = "missing"\n' + INSTANCE + INSTANCE.replace("gitlab-prod", "b")
    problems = problems_of(write_config(tmp_path, text))
    assert len(problems) == 1 and "at 'ssh.identity_file'" in problems[0]


# --- selecting instances ----------------------------------------------------------------


@pytest.fixture
def three(tmp_path):
    text = "".join(INSTANCE.replace("gitlab-prod", name) for name in ("a", "b", "c"))
    return load_config(write_config(tmp_path, text))


def test_select_none_gives_every_instance(three):
    assert three.select([]) == three.instances


def test_select_gives_named_instances_once_each(three):
    assert [i.name for i in three.select(["c", "a", "c"])] == ["c", "a"]


def test_select_unknown_names_them_and_lists_known(three):
    with pytest.raises(ConfigError) as caught:
        three.select(["a", "zz"])
    [line] = caught.value.problems
    assert "no instance named 'zz'" in line and "known instances: a, b, c" in line


# --- finding the config file ------------------------------------------------------------


def test_find_config_path_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert find_config_path("/x/c.toml", {"GCOPS_CONFIG": "/y.toml"}) == Path("/x/c.toml")
    assert find_config_path(None, {"GCOPS_CONFIG": "/y.toml"}) == Path("/y.toml")
    assert find_config_path(None, {}) == Path("/etc/gcops/config.toml")
    (tmp_path / "gcops.toml").write_text("")
    assert find_config_path(None, {}) == tmp_path / "gcops.toml"
    assert find_config_path(None, {"GCOPS_CONFIG": "/y.toml"}) == Path("/y.toml")


# --- durations ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90.0), ("30m", 1800.0), ("2h", 7200.0), ("1h30m", 5400.0), ("1h0m5s", 3605.0), (" 10s ", 10.0)],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "30", "1.5m", "m", "30 m", "1d", "30m1h", "-5s", "0s", "0h0m", "s30"])
def test_parse_duration_rejects(text):
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


# --- [instance.probe] ------------------------------------------------------------------------


def test_probe_password_file_is_read_at_load_time(tmp_path):
    secret = tmp_path / "probe.secret"
    secret.write_text("s3cret\n")
    path = write_config(tmp_path, INSTANCE + f'[instance.probe]\nusername = "u"\npassword_file = "{secret}"\n'
                                              'repository = "group/project"\n')
    probe = load_config(path).instances[0].probe
    assert (probe.username, probe.password, probe.repository) == ("u", "s3cret", "group/project")
    assert "s3cret" not in repr(load_config(path))


@pytest.mark.parametrize("table, key, fragment", [
    ('username = "u"\npassword_file = "missing.secret"', "probe.password_file", "cannot read"),
    ('username = "u"', "probe.password", "exactly one of password or password_file"),
    ('username = "u"\npassword = "p"\npassword_file = "x"', "probe.password", "exactly one"),
    ('password = "p"', "probe.username", "required key is missing"),
    ('username = "u"\npassword = "p"\nrepository = "Bad Repo"', "probe.repository", "invalid repository"),
    ('username = "u"\npassword = "p"\npasword = "typo"', "probe.pasword", "unknown key"),
])
def test_probe_mistakes_name_their_key(tmp_path, table, key, fragment):
    path = write_config(tmp_path, INSTANCE + "[instance.probe]\n" + table + "\n")
    assert fragment in problem_at(path, f"instance[0].{key}")


def test_a_probe_password_of_the_wrong_type_is_named_never_shown(tmp_path):
    path = write_config(tmp_path, INSTANCE + "[instance.probe]\nusername = \"u\"\npassword = 987654321\n")
    said = problem_at(path, "instance[0].probe.password")
    assert "expected a string, got int" in said and "987654321" not in "\n".join(problems_of(path))


def test_no_probe_table_means_no_credentials(tmp_path):
    assert load_config(write_config(tmp_path, INSTANCE)).instances[0].probe is None


def test_history_url_and_password_file_are_read_at_load_time(tmp_path):
    from gcops.state.history import SqliteHistory, open_history
    from gcops.state.history.postgresql import PostgresHistory

    assert load_config(write_config(tmp_path, INSTANCE)).settings.history is None
    assert isinstance(open_history(load_config(write_config(tmp_path, INSTANCE)).settings), SqliteHistory)
    secret = tmp_path / "history.secret"
    secret.write_text("s3cr3t-history\nignored\n")
    url = "postgresql://gcops@db.example.com:5432/gcops?sslmode=require"
    settings = load_config(write_config(
        tmp_path, f'[gcops]\nhistory = "{url}"\nhistory_password_file = "history.secret"\n' + INSTANCE)).settings
    assert settings.history == url and settings.history_password_file.value == "s3cr3t-history"
    assert "s3cr3t" not in repr(settings) and "s3cr3t" not in str(settings.history_password_file)
    store = open_history(settings, env={"GCOPS_HISTORY_PASSWORD": "from-env"})
    assert isinstance(store, PostgresHistory) and store._password == "s3cr3t-history"
    assert store.where == "postgresql://gcops@db.example.com:5432/gcops" and "s3cr3t" not in repr(store)
    bare = load_config(write_config(tmp_path, f'[gcops]\nhistory = "{url}"\n' + INSTANCE)).settings
    assert open_history(bare, env={"GCOPS_HISTORY_PASSWORD": "from-env"})._password == "from-env"


@pytest.mark.parametrize("gcops, key, fragment", [
    ('history = "postgresql://gcops:hunter2@db/gcops"', "gcops.history", "carries a password"),
    ('history = "postgresql://gcops@db/gcops?password=hunter2"', "gcops.history", "carries a password"),
    ('history = "mysql://gcops@db/gcops"', "gcops.history", "expected a postgresql://"),
    ('history = "postgresql://db:notaport/gcops"', "gcops.history", "cannot be parsed"),
    ('history_password_file = "missing.secret"', "gcops.history_password_file", "cannot read"),
    ('history_password_file = "config.toml"', "gcops.history_password_file", "history is not a postgresql"),
])
def test_history_mistakes_name_their_key_and_never_the_password(tmp_path, gcops, key, fragment):
    line = problem_at(write_config(tmp_path, f"[gcops]\n{gcops}\n" + INSTANCE), key)
    assert fragment in line and "hunter2" not in line
