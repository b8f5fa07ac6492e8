"""``vrrp-failover --from-keepalived keepalived.conf``: keepalived's ``vrrp_instance`` blocks as our config.

``convert(text, source)`` parses keepalived's syntax (words, ``{ }`` blocks, ``#`` / ``!`` comments, double
quotes) and returns a ``Conversion``: the instances as plain dicts in our config's keys (validate them with
``config.validate_instances``) and one ``Skipped(line, text, why)`` for every line it did not convert, so the
operator sees what keepalived did there that we will not. Pure: no file, no network.

Converted (keepalived -> ours): ``interface``, ``virtual_router_id``, ``priority``, ``advert_int``,
``nopreempt`` / ``preempt``, ``preempt_delay``, ``version`` (or global_defs ``vrrp_version``; keepalived's
default is 2; an IPv6 instance without its own ``version`` is 3, as in keepalived), ``virtual_ipaddress`` (on
the instance's interface; IPv4 or IPv6, the first address's family: keepalived ignores the others, they are
named), ``unicast_peer``, ``accept`` / ``no_accept`` and ``strict_mode`` (or global_defs ``vrrp_strict``:
keepalived's accept default is "accept unless strict", as ours), ``use_vmac [NAME]`` and ``vmac_xmit_base``,
``notify`` (with keepalived's argument order), ``track_script`` (with its ``vrrp_script``: script, interval,
timeout, weight, rise, fall, init_fail), ``track_interface``, ``track_file`` (with its
``vrrp_track_file``: file, weight), ``garp_master_delay`` (our garp_delay), ``garp_lower_prio_repeat``,
``garp_lower_prio_delay``, ``higher_prio_send_advert``, ``garp_master_refresh``, ``garp_master_refresh_repeat``
(or global_defs ``vrrp_garp_master_refresh`` / ``vrrp_garp_master_refresh_repeat``), and ``vrrp_sync_group``
blocks (``group``, ``notify``, ``notify_master`` / ``notify_backup`` / ``notify_fault`` / ``notify_stop``) into
``sync_groups``: then the result is the sections form (``Conversion.document``). A parse error (an unclosed
block or quote, a ``}`` too many) or no ``vrrp_instance`` at all is a ConfigError naming the line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from failover_core.config import ConfigError

MAX_NESTING = 16


@dataclass
class Node:
    """One statement: its line, its words, and its block's statements (None when it has no block)."""

    line: int
    words: list[str]
    children: list[Node] | None = None
    end_line: int = 0  # the line of the closing brace (blocks)


@dataclass(frozen=True)
class Skipped:
    line: int
    text: str
    why: str


@dataclass
class Conversion:
    instances: list[dict[str, Any]] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)  # the line of each instance's vrrp_instance
    skipped: list[Skipped] = field(default_factory=list)
    sync_groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    group_lines: dict[str, int] = field(default_factory=dict)  # the line of each group's vrrp_sync_group

    def document(self) -> Any:
        """Our config: one instance, a list, or (with sync groups) the sections."""
        if self.sync_groups:
            return {"instances": self.instances, "sync_groups": self.sync_groups}
        return self.instances[0] if len(self.instances) == 1 else self.instances

    def line_of(self, key: str) -> int | None:
        """The keepalived.conf line a problem key of ``config.validate_vrrp_config(document())`` points at."""
        if key.startswith("sync_groups."):
            return self.group_lines.get(key.split(".")[1].split("[")[0])
        key = key.removeprefix("instances")
        if len(self.instances) == 1 and not key.startswith("["):
            return self.lines[0]
        if key.startswith("["):
            n = key[1:key.index("]")]
            if n.isdigit() and int(n) < len(self.lines):
                return self.lines[int(n)]
        return None


# ---- syntax --------------------------------------------------------------------------------

def _tokens(raw: str, source: str, lineno: int) -> list[str]:
    """Words of one line: double quotes group, ``#`` / ``!`` start a comment, braces are words of their own."""
    out: list[str] = []
    word: list[str] = []
    i = 0
    while i < len(raw):
        c = raw[i]
        if c == '"':
            end = raw.find('"', i + 1)
            if end < 0:
                raise ConfigError(f"{source}:{lineno}", [("", raw.strip(), "a double quote is not closed")])
            word.append(raw[i + 1:end])
            i = end + 1
            continue
        if c in "#!" and not word:
            break
        if c.isspace() or c in "{}":
            if word:
                out.append("".join(word))
                word = []
            if c in "{}":
                out.append(c)
        else:
            word.append(c)
        i += 1
    if word:
        out.append("".join(word))
    return out


def parse(text: str, source: str) -> list[Node]:
    """keepalived.conf -> statements; ConfigError (with the line) for braces that do not match."""
    root: list[Node] = []
    stack: list[tuple[list[Node], Node | None]] = [(root, None)]
    for lineno, raw in enumerate(text.splitlines(), start=1):
        words: list[str] = []
        for tok in _tokens(raw, source, lineno):
            if tok == "{":
                siblings = stack[-1][0]
                if not words and siblings and siblings[-1].children is None:
                    node = siblings[-1]  # "vrrp_instance VI_1" on one line, "{" on the next
                    node.children = []
                elif not words:
                    raise ConfigError(f"{source}:{lineno}", [("", raw.strip(), "'{' opens a block with no name")])
                else:
                    node = Node(lineno, words, [])
                    siblings.append(node)
                if len(stack) > MAX_NESTING:
                    raise ConfigError(f"{source}:{lineno}", [("", raw.strip(), f"blocks nested deeper than "
                                                                              f"{MAX_NESTING}")])
                assert node.children is not None
                stack.append((node.children, node))
                words = []
            elif tok == "}":
                if words:
                    stack[-1][0].append(Node(lineno, words))
                    words = []
                if len(stack) == 1:
                    raise ConfigError(f"{source}:{lineno}", [("", raw.strip(), "'}' closes no block")])
                closed = stack.pop()[1]
                assert closed is not None
                closed.end_line = lineno
            else:
                words.append(tok)
        if words:
            stack[-1][0].append(Node(lineno, words))
    if len(stack) > 1:
        opened = stack[-1][1]
        assert opened is not None
        raise ConfigError(f"{source}:{opened.line}", [("", " ".join(opened.words) + " {",
                                                       "this block is never closed with '}'")])
    return root


# ---- meaning -------------------------------------------------------------------------------

def _text(node: Node) -> str:
    return " ".join(node.words) + (" { ... }" if node.children is not None else "")


def _number(word: str) -> int | float:
    try:
        return int(word)
    except ValueError:
        return float(word)  # ValueError for a word that is no number: the caller names the line


class _Converter:
    def __init__(self, source: str) -> None:
        self.source = source
        self.out = Conversion()
        self.version = 2  # keepalived's default vrrp_version
        self.scripts: dict[str, Node] = {}
        self.files: dict[str, Node] = {}
        self.refresh: dict[str, int | float] = {}  # global_defs vrrp_garp_master_refresh(_repeat): instance defaults
        self.strict = False  # global_defs vrrp_strict: every instance's strict_mode default

    def skip(self, node: Node, why: str) -> None:
        self.out.skipped.append(Skipped(node.line, _text(node), why))

    def run(self, nodes: list[Node]) -> Conversion:
        for node in nodes:  # definitions first: an instance may name a vrrp_script defined after it
            head = node.words[0] if node.words else ""
            if head == "global_defs" and node.children is not None:
                self.global_defs(node.children)
            elif head == "vrrp_script" and node.children is not None and len(node.words) == 2:
                self.scripts[node.words[1]] = node
            elif head == "vrrp_track_file" and node.children is not None and len(node.words) == 2:
                self.files[node.words[1]] = node
        used_scripts: set[str] = set()
        used_files: set[str] = set()
        for node in nodes:
            head = node.words[0] if node.words else ""
            if head == "vrrp_instance" and node.children is not None and len(node.words) == 2:
                self.instance(node, used_scripts, used_files)
            elif head in ("global_defs", "vrrp_script", "vrrp_track_file") and node.children is not None:
                continue
            elif head == "vrrp_sync_group" and node.children is not None and len(node.words) == 2:
                continue  # after every instance: its members must be known
            elif head == "include":
                self.skip(node, "include is not followed: convert the included file on its own")
            elif node.children is not None:
                self.skip(node, f"block not converted (lines {node.line}-{node.end_line}): "
                                f"{_BLOCK_WHY.get(head, 'no equivalent in VrrpFailover')}")
            else:
                self.skip(node, "not understood here")
        for node in nodes:
            if node.words[:1] == ["vrrp_sync_group"] and node.children is not None and len(node.words) == 2:
                self.sync_group(node)
        for name, node in self.scripts.items():
            if name not in used_scripts:
                self.skip(node, "vrrp_script used by no converted vrrp_instance")
        for name, node in self.files.items():
            if name not in used_files:
                self.skip(node, "vrrp_track_file used by no converted vrrp_instance")
        if not self.out.instances:
            raise ConfigError(self.source, [("", "(no vrrp_instance)",
                                             "the file has no vrrp_instance block to convert")])
        return self.out

    def global_defs(self, nodes: list[Node]) -> None:
        for node in nodes:
            if node.words[:1] == ["vrrp_version"] and len(node.words) == 2 and node.words[1] in ("2", "3"):
                self.version = int(node.words[1])
            elif node.words == ["vrrp_strict"]:
                self.strict = True
            elif node.words[0] in _GLOBAL_REFRESH and len(node.words) == 2 and node.words[1].isdigit():
                self.refresh[_GLOBAL_REFRESH[node.words[0]]] = int(node.words[1])
            else:
                self.skip(node, "global_defs setting not converted (no equivalent in VrrpFailover)")

    def instance(self, block: Node, used_scripts: set[str], used_files: set[str]) -> None:
        inst: dict[str, Any] = {"name": block.words[1], **self.refresh}
        if self.strict:
            inst["strict_mode"] = True
        version: int | None = None
        addresses: list[tuple[Node, str, str | None]] = []  # (line, address, dev)
        assert block.children is not None
        for node in block.children:
            key, args = node.words[0], node.words[1:]
            try:
                if node.children is not None:
                    self.instance_block(node, inst, addresses, used_scripts, used_files)
                elif key in _SIMPLE and len(args) == 1:
                    ours, kind = _SIMPLE[key]
                    inst[ours] = kind(args[0])
                elif key in _FLAGS and not args:
                    ours, value = _FLAGS[key]
                    inst[ours] = value
                elif key == "version" and args in (["2"], ["3"]):
                    version = int(args[0])
                elif key == "notify" and len(args) >= 1:
                    inst["notify"] = args[0]
                    inst["notify_args"] = "keepalived"
                    if len(args) > 1:
                        self.skip(node, "notify's user/group are not converted: the script runs as the router's user")
                elif key == "strict_mode" and len(args) <= 1:
                    if args and args[0].lower() not in _TRUE_FALSE:
                        raise ValueError
                    inst["strict_mode"] = _TRUE_FALSE[args[0].lower()] if args else True
                elif key == "use_vmac" and len(args) <= 2:
                    names = [a for a in args if ":" not in a]  # keepalived: a word with ':' is a MAC address
                    if len(names) > 1:
                        raise ValueError
                    inst["use_vmac"] = names[0] if names else True
                    if len(names) < len(args):
                        self.skip(node, "a virtual MAC of one's own choosing is not supported: the RFC's "
                                        "00:00:5e:00:01:VRID is used")
                elif key == "state" and args == ["BACKUP"]:
                    pass  # what ours always does
                elif key == "state" and args == ["MASTER"]:
                    self.skip(node, "every router starts as Backup (RFC 5798) unless it is the address owner "
                                    "(priority 255); the election decides")
                else:
                    self.skip(node, _INSTANCE_WHY.get(key, "not understood here"))
            except ValueError:
                self.skip(node, f"{' '.join(args)!r} is not a number" if key not in ("strict_mode", "use_vmac")
                          else f"{' '.join(args)!r} is not understood here")
        interface = inst.get("interface_name")
        ips = []
        family = None  # keepalived: the instance's family is its first address's
        for node, addr, dev in addresses:
            fam = 6 if ":" in addr else 4
            if dev is not None and interface is not None and dev != interface:
                self.skip(node, f"address on another interface ({dev}) than the instance's ({interface}): "
                                "not converted")
            elif family is not None and fam != family:
                self.skip(node, f"IPv{fam} address in an IPv{family} instance: one address family per instance "
                                "(keepalived ignores it too); make an instance of its own for it")
            else:
                family = fam
                ips.append(addr)
        # keepalived: an IPv6 instance without its own version line is VRRPv3 whatever global_defs says
        inst["version"] = version if version is not None else 3 if family == 6 else self.version
        inst["ip_addresses"] = ips
        self.out.instances.append(inst)
        self.out.lines.append(block.line)

    def instance_block(self, node: Node, inst: dict[str, Any], addresses: list[tuple[Node, str, str | None]],
                       used_scripts: set[str], used_files: set[str]) -> None:
        key = node.words[0]
        assert node.children is not None
        if key == "virtual_ipaddress" and len(node.words) == 1:
            for item in node.children:
                words = item.words
                dev = None
                rest = words[1:]
                if rest[:1] == ["dev"] and len(rest) >= 2:
                    dev, rest = rest[1], rest[2:]
                if rest or item.children is not None:
                    self.skip(item, f"address options other than 'dev' ({' '.join(rest)}) are not supported")
                    continue
                addresses.append((item, words[0], dev))
        elif key == "unicast_peer" and len(node.words) == 1:
            peers = []
            for item in node.children:
                if len(item.words) == 1 and item.children is None:
                    peers.append(item.words[0])
                else:
                    self.skip(item, "unicast peer options are not supported")
            inst["unicast_peers"] = peers
        elif key == "track_script" and len(node.words) == 1:
            for item in node.children:
                self.track_script(item, inst, used_scripts)
        elif key == "track_interface" and len(node.words) == 1:
            for item in node.children:
                weight = self.weight_of(item)
                if weight is False:
                    continue
                entry: dict[str, Any] = {"name": item.words[0]}
                if weight:
                    entry["weight"] = weight
                inst.setdefault("track_interface", []).append(entry)
        elif key == "track_file" and len(node.words) == 1:
            for item in node.children:
                self.track_file(item, inst, used_files)
        else:
            self.skip(node, f"block not converted (lines {node.line}-{node.end_line}): "
                            f"{_INSTANCE_WHY.get(key, 'not understood here')}")

    def weight_of(self, item: Node) -> int | bool | None:
        """``NAME [weight W]`` -> W (None without); False (and the line named) for anything else."""
        w = item.words[1:]
        if item.children is None and not w:
            return None
        if item.children is None and len(w) == 2 and w[0] == "weight":
            try:
                return int(w[1])
            except ValueError:
                pass
        self.skip(item, "only 'NAME' or 'NAME weight W' is converted here (no 'reverse')")
        return False

    def track_script(self, item: Node, inst: dict[str, Any], used: set[str]) -> None:
        weight = self.weight_of(item)
        if weight is False:
            return
        name = item.words[0]
        block = self.scripts.get(name)
        if block is None:
            self.skip(item, f"no vrrp_script {name} in this file")
            return
        used.add(name)
        spec: dict[str, Any] = {"name": name}
        assert block.children is not None
        for node in block.children:
            key, args = node.words[0], node.words[1:]
            try:
                if key == "script" and len(args) == 1:
                    spec["command"] = args[0]
                elif key in ("interval", "timeout") and len(args) == 1:
                    spec[key] = _number(args[0])
                elif key in ("weight", "rise", "fall") and len(args) == 1:
                    spec[key] = int(args[0])
                elif key == "init_fail" and not args:
                    spec["init_fail"] = True
                else:
                    self.skip(node, f"vrrp_script {name}: not converted ({_SCRIPT_WHY.get(key, 'not understood')})")
            except ValueError:
                self.skip(node, f"{' '.join(args)!r} is not a number")
        if weight is not None:
            spec["weight"] = weight
        if spec.get("weight") == 0:  # keepalived's weight 0 (its default): a failure is a fault
            del spec["weight"]
        inst.setdefault("track_script", []).append(spec)

    def track_file(self, item: Node, inst: dict[str, Any], used: set[str]) -> None:
        weight = self.weight_of(item)
        if weight is False:
            return
        name = item.words[0]
        block = self.files.get(name)
        if block is None:
            self.skip(item, f"no vrrp_track_file {name} in this file")
            return
        used.add(name)
        spec: dict[str, Any] = {}
        assert block.children is not None
        for node in block.children:
            key, args = node.words[0], node.words[1:]
            if key == "file" and len(args) == 1:
                spec["path"] = args[0]
            elif key == "weight" and len(args) == 1 and args[0].lstrip("-").isdigit():
                spec["weight"] = int(args[0])
            else:
                self.skip(node, f"vrrp_track_file {name}: not converted (init_file and 'reverse' have no "
                                "equivalent)")
        if weight is not None:
            spec["weight"] = weight
        inst.setdefault("track_file", []).append(spec)


    def sync_group(self, block: Node) -> None:
        """keepalived's vrrp_sync_group: its members (known instances only), its notify scripts."""
        name = block.words[1]
        known = {i["name"] for i in self.out.instances}
        group: dict[str, Any] = {"members": []}
        assert block.children is not None
        for node in block.children:
            key, args = node.words[0], node.words[1:]
            if key == "group" and node.children is not None and not args:
                for item in node.children:
                    for member in item.words:
                        if member not in known:
                            self.skip(item, f"sync group {name}: no converted vrrp_instance {member} (keepalived "
                                            "ignores it too)")
                        elif member in group["members"]:
                            self.skip(item, f"sync group {name}: {member} is listed twice")
                        else:
                            group["members"].append(member)
            elif key == "notify" and args and node.children is None:
                group["notify"] = args[0]
                group["notify_args"] = "keepalived"
                if len(args) > 1:
                    self.skip(node, "notify's user/group are not converted: the script runs as the router's user")
            elif key in ("notify_master", "notify_backup", "notify_fault", "notify_stop") and args \
                    and node.children is None:
                group[key] = args[0]
                if len(args) > 1:
                    self.skip(node, f"{key}'s user/group are not converted: the script runs as the router's user")
            else:
                self.skip(node, f"sync group {name}: not converted ({_GROUP_WHY.get(key, 'not understood here')})")
        taken = {m: g for g, c in self.out.sync_groups.items() for m in c["members"]}
        again = [m for m in group["members"] if m in taken]
        if again:
            self.skip(block, f"sync group not converted (lines {block.line}-{block.end_line}): "
                             f"{', '.join(again)} already in sync group {taken[again[0]]} (keepalived ignores it too)")
        elif len(group["members"]) < 2:
            self.skip(block, f"sync group not converted (lines {block.line}-{block.end_line}): a group of "
                             f"{len(group['members'])} instance(s) moves like its instance alone (keepalived warns "
                             "too; our sync groups need two or more)")
        elif name in self.out.sync_groups:
            self.skip(block, f"a second vrrp_sync_group {name}: not converted")
        else:
            self.out.sync_groups[name] = group
            self.out.group_lines[name] = block.line


def _seconds(word: str) -> int | float:
    return _number(word)


_SIMPLE: dict[str, tuple[str, Any]] = {
    "interface": ("interface_name", str),
    "virtual_router_id": ("vrid", int),
    "priority": ("priority", int),
    "advert_int": ("advert_interval", _number),
    "preempt_delay": ("preempt_delay", _seconds),
    "garp_master_delay": ("garp_delay", _seconds),
    "garp_lower_prio_repeat": ("garp_lower_prio_repeat", int),
    "garp_lower_prio_delay": ("garp_lower_prio_delay", _seconds),
    "garp_master_refresh": ("garp_master_refresh", int),
    "garp_master_refresh_repeat": ("garp_master_refresh_repeat", int),
}
_GLOBAL_REFRESH = {"vrrp_garp_master_refresh": "garp_master_refresh",
                   "vrrp_garp_master_refresh_repeat": "garp_master_refresh_repeat"}
_GROUP_WHY = {
    "track_script": "a group's own trackers are not supported: track in each member instance",
    "track_interface": "a group's own trackers are not supported: track in each member instance",
    "track_file": "a group's own trackers are not supported: track in each member instance",
    "track_process": "process tracking is not supported",
    "track_bfd": "BFD tracking is not supported",
    "global_tracking": "a group's own trackers are not supported (each member uses its own weights)",
    "sgroup_tracking_weight": "each member's tracker weights apply as configured",
    "smtp_alert": "no e-mail alerts: use notify",
    "notify_priority_changes": "no priority notifications",
}
_FLAGS: dict[str, tuple[str, bool]] = {
    "nopreempt": ("preempt_mode", False),
    "preempt": ("preempt_mode", True),
    "accept": ("accept_mode", True),
    "no_accept": ("accept_mode", False),
    "higher_prio_send_advert": ("higher_prio_send_advert", True),
    "vmac_xmit_base": ("vmac_xmit_base", True),
}
_TRUE_FALSE = {"true": True, "on": True, "yes": True, "false": False, "off": False, "no": False}
_INSTANCE_WHY = {
    "authentication": "VRRPv2 authentication (deprecated by RFC 3768) is not supported",
    "unicast_src_ip": "the advert source is the interface's primary address",
    "notify_master": "per-state scripts have no equivalent: use notify (keepalived's arguments, $3 is the state)",
    "notify_backup": "per-state scripts have no equivalent: use notify (keepalived's arguments, $3 is the state)",
    "notify_fault": "per-state scripts have no equivalent: use notify (keepalived's arguments, $3 is the state)",
    "notify_stop": "per-state scripts have no equivalent: use notify (keepalived's arguments, $3 is the state)",
    "use_vmac": "use_vmac takes at most an interface name and a MAC address",
    "virtual_ipaddress_excluded": "excluded addresses are not supported",
    "virtual_routes": "virtual routes are not supported",
    "virtual_rules": "virtual rules are not supported",
    "dont_track_primary": "nothing to do: the VRRP interface is tracked only when listed in track_interface",
    "garp_master_repeat": "we send one gratuitous ARP per address per round (garp_repeat rounds)",
    "lvs_sync_daemon_interface": "no LVS",
    "mcast_src_ip": "the advert source is the interface's primary address",
    "strict_mode": "strict_mode takes at most one word: true or false",
    "track_process": "process tracking is not supported",
    "track_bfd": "BFD tracking is not supported",
}
_SCRIPT_WHY = {"user": "scripts run as the router's user", "reverse": "no reversed weights"}
_BLOCK_WHY = {
    "virtual_server": "LVS virtual servers are not VRRP",
    "virtual_server_group": "LVS virtual servers are not VRRP",
    "static_ipaddress": "static addresses are not managed",
    "static_routes": "static routes are not managed",
    "vrrp_track_process": "process tracking is not supported",
}


def convert(text: str, source: str) -> Conversion:
    return _Converter(source).run(parse(text, source))


# ---- output --------------------------------------------------------------------------------

def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(type(v).__name__)


def _toml_key(key: str) -> str:
    return key if key and all(c.isascii() and (c.isalnum() or c in "_-") for c in key) else _toml_value(key)


def _toml_table(table: dict[str, Any], prefix: str = "") -> list[str]:
    """A table's plain keys, then its lists of tables as arrays of tables (``[[prefix.key]]``)."""
    lines = [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in table.items()
             if not (isinstance(v, list) and v and isinstance(v[0], dict))]
    for k, v in table.items():
        if isinstance(v, list) and v and isinstance(v[0], dict):
            for sub in v:
                lines += ["", f"[[{prefix}{_toml_key(k)}]]", *(f"{_toml_key(sk)} = {_toml_value(sv)}"
                                                               for sk, sv in sub.items())]
    return lines


def to_toml(instance: dict[str, Any]) -> str:
    """One instance as TOML (a top-level table; tracker lists as arrays of tables)."""
    return "\n".join(_toml_table(instance)) + "\n"


def document_to_toml(document: Any) -> str:
    """``Conversion.document()`` as TOML: one instance as a top-level table; several (and sync groups) as the
    sections form (``[[instances]]`` tables, ``[sync_groups.NAME]`` tables)."""
    if isinstance(document, dict) and "instances" not in document:
        return to_toml(document)
    instances = document["instances"] if isinstance(document, dict) else document
    lines: list[str] = []
    for inst in instances:
        lines += ["[[instances]]", *_toml_table(inst, "instances."), ""]
    for name, group in (document.get("sync_groups", {}) if isinstance(document, dict) else {}).items():
        lines += [f"[sync_groups.{_toml_key(name)}]", *_toml_table(group), ""]
    return "\n".join(lines)
