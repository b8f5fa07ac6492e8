"""The reason codes of VrrpFailover: transitions, decisions that change no state, and drops.

Every code the router logs (a transition, a decision, a dropped advert) and every drop counter
(the status file's ``drops``) is a member of one of these enums. The values are stable: logs,
counters, notify hooks and tests use them. docs/vrrp.md's code tables are generated from here.
"""

from __future__ import annotations

from failover_core.step import ReasonCode


class TransitionCode(ReasonCode):
    """Why a virtual router changed state (the transition's code, also the step's reason)."""

    STARTUP_ADDRESS_OWNER = ("startup_address_owner",
                             "priority 255: the address owner becomes Master at once (RFC 5798 6.4.1)")
    STARTUP_BACKUP = "startup_backup", "started as Backup with a Master_Down_Timer (RFC 5798 6.4.1)"
    MASTER_DOWN_INTERVAL_EXPIRED = ("master_down_interval_expired",
                                    "Backup heard no advert for Master_Down_Interval and became Master (6.4.2)")
    MASTER_SENT_PRIORITY_ZERO = ("master_sent_priority_zero",
                                 "the Master resigned (priority 0); Backup took over after Skew_Time (6.4.2)")
    PREEMPT_LOWER_PRIORITY_MASTER = ("preempt_lower_priority_master",
                                     "a lower-priority Master was advertising and preempt_mode is on (6.4.2)")
    HIGHER_PRIORITY_ADVERT = "higher_priority_advert", "Master heard a higher priority and became Backup (6.4.3)"
    EQUAL_PRIORITY_HIGHER_ADDRESS = ("equal_priority_higher_address",
                                     "Master heard its own priority from a higher address and became Backup (6.4.3)")
    SHUTDOWN = "shutdown", "the router stopped (a Master sends priority 0 and removes its addresses)"
    TRACK_SCRIPT_FAULT = ("track_script_fault",
                          "a fault track script failed (after fall): Fault (a Master resigns first)")
    TRACK_SCRIPT_RECOVERED = ("track_script_recovered",
                              "a track script passes again (after rise) and no tracker makes a fault: back to Backup")
    TRACK_INTERFACE_FAULT = ("track_interface_fault",
                             "a tracked interface without weight is down (admin down, no carrier, gone): Fault")
    TRACK_INTERFACE_RECOVERED = ("track_interface_recovered",
                                 "a tracked interface is up again and no tracker makes a fault: back to Backup")
    TRACK_FILE_FAULT = ("track_file_fault",
                        "a track file is missing, unreadable, holds no integer, or value x weight < -253 (weight 0: "
                        "not 0): Fault")
    TRACK_FILE_RECOVERED = "track_file_recovered", "a track file is fine again and no tracker makes a fault: Backup"
    SYNC_GROUP_FAULT = ("sync_group_fault",
                        "another member of the router's sync group is in Fault: Fault too (a Master resigns first)")
    SYNC_GROUP_RECOVERED = ("sync_group_recovered",
                            "no member of the sync group is in Fault any more (and no tracker of its own makes "
                            "one): back to Backup")
    SYNC_GROUP_BACKUP = ("sync_group_backup",
                         "another member of the sync group left Master for Backup: this Master goes Backup too "
                         "(no priority-0 advert, as keepalived)")


class DecisionCode(ReasonCode):
    """Decisions that change no state but change what the router does next."""

    MASTER_RESIGNING = ("master_resigning",
                        "Backup heard priority 0: Master_Down_Timer set to Skew_Time (RFC 5798 6.4.2)")
    PREEMPT_PENDING = ("preempt_pending",
                       "Backup heard a lower-priority Master and preempts: the Master_Down_Timer runs out (6.4.2)")
    ANSWERED_PRIORITY_ZERO = ("answered_priority_zero",
                              "Master heard priority 0 and advertised at once (RFC 5798 6.4.3)")
    PRIORITY_CHANGED = ("priority_changed",
                        "a weighted tracker (script, interface, file) moved the effective priority (base + weights, "
                        "clamped to 1-254)")
    LOWER_PRIORITY_ANSWERED = ("lower_priority_answered",
                               "Master heard a lower priority (another Master after a partition): gratuitous ARP "
                               "now and garp_lower_prio_repeat - 1 more rounds, so hosts that followed the other "
                               "Master's ARP come back (keepalived's garp_lower_prio_repeat)")
    SYNC_GROUP_WAIT = ("sync_group_wait",
                       "a sync group member's Master_Down_Timer ran out but not every member wants Master: it "
                       "waits as Backup (keepalived: prefer Backup to thrashing)")
    SYNC_GROUP_HOLDS_FAULT = ("sync_group_holds_fault",
                              "the router's own trackers no longer make a fault, but its sync group is still in "
                              "Fault (another member is): it stays in Fault")


class SyncGroupCode(ReasonCode):
    """Why a sync group (keepalived's vrrp_sync_group) changed state: its log line and its notify hook."""

    GROUP_STARTED = "group_started", "every member started: the group is Backup (Master when all are address owners)"
    GROUP_MEMBER_FAULT = ("group_member_fault",
                          "a member went to Fault (its own tracker): every member goes to Fault")
    GROUP_RECOVERED = ("group_recovered",
                       "no member's own tracker makes a fault any more: every member leaves Fault for Backup")
    GROUP_MASTER = ("group_master",
                    "every member wanted Master (each one's Master_Down_Timer ran out): all became Master together")
    GROUP_BACKUP = ("group_backup",
                    "a Master member heard a higher priority and became Backup: every member became Backup")
    GROUP_STOPPED = "group_stopped", "every member stopped"


class AdvertDropCode(ReasonCode):
    """Adverts a router drops (RFC 5798 7.1 checks that need its config) or rate-limits: counted per instance."""

    WRONG_VERSION = "wrong_version", "the advert's VRRP version is not the instance's"
    WRONG_VRID = "wrong_vrid", "the advert's VRID is not the instance's"
    ADDRESS_LIST_MISMATCH = "address_list_mismatch", "the advert's addresses differ from the configured ones"
    INTERVAL_MISMATCH = "interval_mismatch", "VRRPv2: the advert's interval differs from the configured one"
    NOT_A_UNICAST_PEER = "not_a_unicast_peer", "unicast_peers is set and the sender is not one of them"
    OWN_ADVERT = "own_advert", "the advert came from this host's own address"
    LOWER_PRIORITY_RATE_LIMITED = ("lower_priority_rate_limited",
                                   "Master heard a lower priority within 0.2 s of its last gratuitous ARP round: "
                                   "folded into one round at the end of those 0.2 s (at most 5 rounds a second)")


class PacketDropCode(ReasonCode):
    """Datagrams dropped before any router sees them (the codec, then the VRID lookup): counted per interface."""

    SHORT_PACKET = "short_packet", "shorter than an IPv4 header or a VRRP message"
    NOT_IPV4 = "not_ipv4", "the IP version is not 4"
    NOT_VRRP_PROTOCOL = "not_vrrp_protocol", "the IP protocol is not 112 (VRRP)"
    TTL_NOT_255 = "ttl_not_255", "the IP TTL is not 255 (the sender is not on the link)"
    HOP_LIMIT_NOT_255 = "hop_limit_not_255", "IPv6: the hop limit is not 255 (the sender is not on the link)"
    BAD_VERSION = "bad_version", "the VRRP version is neither 2 nor 3 (over IPv6: not 3)"
    BAD_TYPE = "bad_type", "the VRRP type is not 1 (advertisement)"
    BAD_LENGTH = "bad_length", "VRID 0, no addresses, or a length other than the address count needs (short or long)"
    BAD_CHECKSUM = "bad_checksum", "the checksum does not match (v3: with the IPv4 or IPv6 pseudo-header)"
    AUTH_TYPE_UNSUPPORTED = "auth_type_unsupported", "VRRPv2 authentication (types 1/2) is not supported"
    ZERO_INTERVAL = "zero_interval", "the advertisement interval is 0"
    UNKNOWN_VRID = "unknown_vrid", "no instance on this interface has the advert's VRID"
