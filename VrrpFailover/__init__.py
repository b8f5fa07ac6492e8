"""VrrpFailover: a VRRPv3/v2 router that moves virtual IP addresses, interoperable with keepalived."""
