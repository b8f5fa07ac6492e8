"""ha_valet.cfg parsing: the documented formats verbatim, the TOML form, and errors with lines.

Errors are failover_core's ConfigError: ``file:line: key '[Section] key': value ... is not allowed: ...``.
"""

import contextlib
import re
import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from failover_core.config import ConfigError
from HaValet.config import load_config, parse_config

# The example of the issue brief (ONAP/Ostro valet, [Name] spelling).
DOCUMENTED = textwrap.dedent("""\
    [Ostro]
    order = 5
    priority = 1
    host = valet1
    stand_by_list = valet2
    user = m04060
    port = 22
    protocol = ssh
    start_command = "ssh %s@%s 'cd @OSTRO_SERVER_DIR@ ; sudo -u m04060 python ./ostro_daemon.py start'" % (user, host)
    stop_command = "ssh %s@%s 'cd @OSTRO_SERVER_DIR@ ; sudo -u m04060 python ./ostro_daemon.py stop'" % (user, host)
    test_command = "ssh %s@%s 'exit $(@OSTRO_SERVER_DIR@/ostro_daemon.py status ; echo $?)'" % (user, host)
    """)

# The README spelling: ':Name' headers, indented keys, a section per host with its own priority.
README_STYLE = textwrap.dedent("""\
    #Host A:
    :Ostro
        host = Host_A
        stand_by = Host_A,Host_B
        user = stack
        port = 8091
        protocol = http
        priority = 1
        start_command="ssh %s@%s 'cd @DIR@ ; ./d.py start'" % (user, host)
        stop_command="ssh %s@%s 'cd @DIR@ ; ./d.py stop'" % (user, host)
        test_command="ssh %s@%s 'exit $(@DIR@/d.py status ; echo $?)'" % (user, host)

    :Allegro
        host = Host_A
        user = stack
        port = 8090
        protocol = http
        start_command="sudo python @WSGI@/wsgi.py &"
        stop_command="sudo pkill -f wsgi"
        test_command="netstat -nap  | grep %s | grep LISTEN | wc -l | exit $(awk \\'{print $1}\\')" % (port)

    #Host B:
    :Ostro
        host = Host_B
        standy_by_list = Host_A,Host_B
        user = stack
        port = 8091
        protocol = http
        priority = 2
        start_command="ssh %s@%s 'cd @DIR@ ; ./d.py start'" % (user, host)
        stop_command="ssh %s@%s 'cd @DIR@ ; ./d.py stop'" % (user, host)
        test_command="ssh %s@%s 'exit $(@DIR@/d.py status ; echo $?)'" % (user, host)

    :Allegro
        host = Host_B
        user = stack
        port = 8090
        protocol = http
        start_command="sudo python @WSGI@/wsgi.py &"
        stop_command="sudo pkill -f wsgi"
        test_command="netstat -nap  | grep %s | grep LISTEN | wc -l | exit $(awk \\'{print $1}\\')" % (port)
    """)


def test_documented_example_renders_commands_for_each_host():
    cfg = parse_config(DOCUMENTED, "ha_valet.cfg")
    (p,) = cfg.processes
    assert p.name == "Ostro" and p.order == 5 and p.hosts == ("valet1", "valet2")
    own, standby = p.instances
    assert own.start_command == ("ssh m04060@valet1 'cd @OSTRO_SERVER_DIR@ ; "
                                 "sudo -u m04060 python ./ostro_daemon.py start'")
    assert standby.stop_command == ("ssh m04060@valet2 'cd @OSTRO_SERVER_DIR@ ; "
                                    "sudo -u m04060 python ./ostro_daemon.py stop'")
    assert standby.test_command == "ssh m04060@valet2 'exit $(@OSTRO_SERVER_DIR@/ostro_daemon.py status ; echo $?)'"
    assert (own.port, own.protocol, own.priority, standby.standby_only) == ("22", "ssh", 1, True)
    assert cfg.warnings == ("placeholder @OSTRO_SERVER_DIR@ is not filled (add it to [placeholders]); "
                            "left as written",)


def test_placeholders_section_fills_them():
    cfg = parse_config(DOCUMENTED + "\n[placeholders]\nOSTRO_SERVER_DIR = /opt/ostro\n", "x.cfg")
    assert cfg.processes[0].instances[1].start_command.startswith("ssh m04060@valet2 'cd /opt/ostro ;")
    assert cfg.warnings == ()


def test_readme_style_merges_hosts_by_priority_and_keeps_local_processes_apart():
    cfg = parse_config(README_STYLE, "r.cfg")
    by_name = {p.name: p for p in cfg.processes}
    assert set(by_name) == {"Ostro", "Allegro@Host_A", "Allegro@Host_B"}
    assert by_name["Ostro"].hosts == ("Host_A", "Host_B")
    assert [i.priority for i in by_name["Ostro"].instances] == [1, 2]
    assert by_name["Allegro@Host_B"].instances[0].test_command == (
        "netstat -nap  | grep 8090 | grep LISTEN | wc -l | exit $(awk '{print $1}')")


def test_upstream_short_keys_and_valet_section():
    text = textwrap.dedent("""\
        [valet]
        interval = 0.5
        max_failures = 3
        notify = /usr/local/bin/page-me
        [ValetApi]
        order=4
        host=valet1
        stand_by_list=valet2
        user=m04060
        interval = 2
        start="ssh -o ConnectTimeout=1 %s@%s 'sudo service apache2 restart'" % (user, host)
        stop="ssh -o ConnectTimeout=1 %s@%s 'sudo apachectl stop'" % (user, host)
        test="exit $(wget -T 1 -t 1 -qO- http://%s:8090/v1 | grep CURRENT | wc -l)" % (host)
        """)
    cfg = parse_config(text, "u.cfg")
    (p,) = cfg.processes
    assert p.instances[1].test_command == "exit $(wget -T 1 -t 1 -qO- http://valet2:8090/v1 | grep CURRENT | wc -l)"
    assert p.timing.interval == 2.0 and p.timing.max_failures == 3
    assert cfg.settings.notify == "/usr/local/bin/page-me" and cfg.settings.timing.interval == 0.5


def test_toml_form_same_keys(tmp_path):
    f = tmp_path / "valet.toml"
    f.write_text(textwrap.dedent("""\
        [valet]
        interval = 1.5
        [Web]
        host = "a"
        stand_by_list = ["b", "c"]
        user = "web"
        port = 8080
        priority = 2
        start_command = "ssh $HAVALET_USER@$HAVALET_HOST start"
        stop_command = "ssh $HAVALET_USER@$HAVALET_HOST stop"
        test_command = "ssh $HAVALET_USER@$HAVALET_HOST test"
        """))
    cfg = load_config(f)
    (p,) = cfg.processes
    assert p.hosts == ("a", "b", "c") and p.timing.interval == 1.5
    assert p.instances[2].environment("Web")["HAVALET_HOST"] == "c"
    assert p.instances[0].port == "8080"


def _error(text: str) -> str:
    with pytest.raises(ConfigError) as e:
        parse_config(text, "bad.cfg")
    assert isinstance(e.value, ConfigError)
    return str(e.value)


def test_malformed_line_names_file_and_line():
    msg = _error(DOCUMENTED.replace("user = m04060\n", "user m04060\n"))
    assert "bad.cfg:6: value 'user m04060' is not allowed: expected 'key = value'" in msg


def test_unknown_expression_names_line_and_key():
    msg = _error(DOCUMENTED.replace('% (user, host)\nstop', '% (user, host) + "x"\nstop'))
    assert re.search(r"^bad\.cfg:9: key '\[Ostro\] start_command': value '.*\+ \"x\"' is not allowed: "
                     r"only a string literal", msg, re.M), msg


def test_unquoted_command_is_refused():
    msg = _error(DOCUMENTED.replace('stop_command = "ssh', "stop_command = ssh").replace(
        "stop'\" % (user, host)", "stop'"))
    assert ("bad.cfg:10: key '[Ostro] stop_command': value \"ssh %s@%s 'cd @OSTRO_SERVER_DIR@ ; sudo -u m04060 "
            "python ./ostro_daemon.py stop'\" is not allowed: a command must be a quoted string") in msg


def test_missing_required_key_names_section_line():
    msg = _error(DOCUMENTED.replace("user = m04060\n", ""))
    assert "bad.cfg:1: key '[Ostro] user': value (missing) is not allowed: missing required key 'user'" in msg
    # and the expressions that used it are reported too
    assert "unknown key name(s) user" in msg


def test_unknown_key_duplicate_key_and_bad_values():
    msg = _error(DOCUMENTED + "colour = red\npriority = 2\n")
    assert "bad.cfg:12: key '[Ostro] colour': value 'red' is not allowed: unknown key" in msg
    assert "bad.cfg:13: key '[Ostro] priority': value '2' is not allowed: duplicate key (first set on line 3)" in msg
    msg = _error(DOCUMENTED.replace("priority = 1", "priority = 0"))
    assert "priority" in msg and "greater than or equal to 1" in msg
    msg = _error("[valet]\ninterval = soon\n" + DOCUMENTED)
    assert "bad.cfg:2: key '[valet] interval': value 'soon' is not allowed: Input should be a valid number" in msg
    assert "'soon'" in msg


def test_key_before_section_and_empty_file():
    assert "bad.cfg:1: value 'host = a' is not allowed: 'key = value' before any section header" in _error("host = a\n")
    assert "no process section found" in _error("# nothing\n")


def test_only_one_process():
    cfg = parse_config(README_STYLE, "r.cfg")
    assert [p.name for p in cfg.only("Allegro").processes] == ["Allegro@Host_A", "Allegro@Host_B"]
    assert [p.name for p in cfg.only("Ostro").processes] == ["Ostro"]
    with pytest.raises(ConfigError, match="no such process"):
        cfg.only("Nope")


CFG_TOKENS = st.sampled_from([
    *"[]:=#;%\"'() \n\tabchostuserst_,0123@\\", "host = a\n", "user = u\n", "start_command = ", 'stop = "x"\n',
    'test = "%s" % (host)\n', "[S]\n", ":T\n", "stand_by_list = b,c\n", "priority = 2\n", "[valet]\n",
    "interval = 0\n", "[placeholders]\n", "X = y\n", "@X@",
])


@settings(max_examples=500, deadline=None)
@given(st.lists(CFG_TOKENS, max_size=60).map("".join))
def test_random_text_raises_only_config_error(text):
    with contextlib.suppress(ConfigError):
        parse_config(text, "fuzz.cfg")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_random_unicode_raises_only_config_error(text):
    with contextlib.suppress(ConfigError):
        parse_config(text, "fuzz.cfg")


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=200))
def test_random_toml_raises_only_config_error(text):
    with contextlib.suppress(ConfigError):
        parse_config(text, "fuzz.toml", "toml")


def test_value_errors_point_at_the_line_of_the_key():
    msg = _error("[valet]\nmax_failures = 0\ninterval = 1 # comment\n" + DOCUMENTED)
    assert ("bad.cfg:2: key '[valet] max_failures': value '0' is not allowed: "
            "Input should be greater than or equal to 1") in msg
    assert ("bad.cfg:3: key '[valet] interval': value '1 # comment' is not allowed: "
            "Input should be a valid number") in msg  # no inline comments
    msg = _error(DOCUMENTED.replace("priority = 1", "priority = 0"))
    assert ("bad.cfg:3: key '[Ostro] priority': value '0' is not allowed: "
            "Input should be greater than or equal to 1") in msg


def test_example_configs_in_the_repo_are_valid():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "config"
    cfg = load_config(root / "ha_valet.cfg")
    assert [p.name for p in cfg.processes] == ["ValetApi", "Ostro"]  # start-up order 4, then 5
    assert cfg.warnings == ()
    toml = load_config(root / "ha_valet.toml")
    assert toml.processes[0].hosts == ("web1", "web2", "web3")
    a, b = load_config(root / "ha_valet-host-a.cfg"), load_config(root / "ha_valet-host-b.cfg")
    assert a.processes[0].hosts == b.processes[0].hosts == ("valet1", "valet2")  # one ranking on both hosts
    assert (a.settings.host_mode.node, b.settings.host_mode.node) == ("valet1", "valet2")
    assert a.settings.host_mode.standard and a.settings.host_mode.witness_group("Ostro") == "valet-Ostro"


# ---------------------------------------------------------------------- per-host mode ([valet] node ...)

PER_HOST = textwrap.dedent("""\
    [valet]
    node = hostA
    listen = 10.0.0.1:8791
    secret = a shared secret of 16+
    peers = hostB=http://10.0.0.2:8791
    stop_timeout = 4
    {extra}
    [Web]
    host = hostA
    stand_by_list = hostB
    user = u
    start_command = "start %s" % (host)
    stop_command = "stop %s" % (host)
    test_command = "test %s" % (host)
    """)


def test_per_host_mode_keys_and_defaults():
    cfg = parse_config(PER_HOST.format(extra=""), "a.cfg")
    hm = cfg.settings.host_mode
    assert hm is not None and not hm.standard
    assert hm.peers == {"hostB": "http://10.0.0.2:8791"} and hm.listen_address == ("10.0.0.1", 8791)
    assert hm.stop_bound == 4.5  # the largest stop_timeout + 0.5 when not given
    assert hm.peer_down_after == hm.heartbeat_timeout  # simple: a peer silent for T is down
    std_cfg = parse_config(PER_HOST.format(extra=WITNESS + "heartbeat_timeout = 8"), "a.cfg")
    std = std_cfg.settings.host_mode
    assert std.standard and std.peer_down_after == std.fencing.down_after == 8  # the witness, too, waits T
    assert std.lease == pytest.approx(8 * 0.999 / 1.001 - 0.25 - 4.5 - 0.1)  # T - margin: 3.134 s
    assert std.witness_group("Web") == "Web" and std_cfg.warnings == ()
    # a heartbeat's request may take as long as its answer can matter (chaos seed 2: not just one interval)
    assert hm.request_timeout == pytest.approx(hm.heartbeat_timeout - hm.heartbeat_interval)
    assert std.request_timeout == pytest.approx(std.lease)


WITNESS = "witness_url = http://10.0.0.9:8790\nwitness_secret = the witness secret 16+\n"


@pytest.mark.parametrize(("extra", "message"), [
    # the default T 3 s with S 4.5 s (stop_timeout 4 + 0.5): no lease at all
    ("", r"a.cfg: key '\[valet\] heartbeat_timeout': value 3.0 .*with a witness, timeout 3s leaves the active "
         r"no lease.*more than 4.86\ds \(stop_bound \(the largest stop_timeout \+ 0.5 s\) = 4.5s\); a lease of two "
         r"heartbeat intervals \(1s\) needs 6.86s"),
    # a lease, but not longer than one heartbeat interval
    ("heartbeat_timeout = 5.5\nstop_bound = 4.5",
     r"a.cfg:\d+: key '\[valet\] heartbeat_timeout': value 5.5 .*lease \(0.639s = timeout 5.5 - fencing margin "
     r"4.861\) must be longer than the heartbeat interval \(1s\).*at least 6.86s"),
], ids=["no-lease", "lease-under-one-interval"])
def test_standard_mode_refuses_a_timeout_that_leaves_no_lease(extra, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(PER_HOST.format(extra=WITNESS + extra), "a.cfg")
    simple = parse_config(PER_HOST.format(extra=extra), "a.cfg")  # no witness, no lease: nothing to refuse
    assert simple.warnings == ()


def test_standard_mode_warns_about_a_lease_under_two_heartbeat_intervals():
    cfg = parse_config(PER_HOST.format(extra=WITNESS + "heartbeat_timeout = 6"), "a.cfg")
    (w,) = cfg.warnings
    assert w.startswith("[valet] heartbeat_timeout = 6: the active's lease (1.138s) is shorter than two heartbeat "
                        "intervals (2s)") and "6.86s" in w


@pytest.mark.parametrize(("extra", "message"), [
    ("witness_url = http://10.0.0.9:8790", r"a.cfg: key '\[valet\] witness_secret': value \(missing\) .*go together"),
    ("heartbeat_interval = 3", r"a.cfg:\d+: key '\[valet\] heartbeat_interval': value 3.0 .*smaller than"),
    ("listen2 = x", r"key '\[valet\] listen2'"),
], ids=["witness-half", "interval", "unknown"])
def test_per_host_mode_errors_name_the_key(extra, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(PER_HOST.format(extra=extra), "a.cfg")


def test_per_host_mode_errors_about_processes():
    text = PER_HOST.format(extra="")
    with pytest.raises(ConfigError, match=r"key '\[valet\] node': value 'hostC' .*not a host of process Web"):
        parse_config(text.replace("node = hostA", "node = hostC"), "a.cfg")
    with pytest.raises(ConfigError, match=r"\[Web\] stand_by_list.*exactly two hosts"):
        parse_config(text.replace("stand_by_list = hostB", "stand_by_list = hostB, hostC"), "a.cfg")
    with pytest.raises(ConfigError, match=r"\[valet\] peers.*no peer valet for host hostB"):
        parse_config(text.replace("peers = hostB=", "peers = hostX="), "a.cfg")
    with pytest.raises(ConfigError, match=r"\[valet\] peers"):
        parse_config(text.replace("peers = hostB=http://10.0.0.2:8791", "peers = hostB=ftp://x"), "a.cfg")
