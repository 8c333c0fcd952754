// SPDX-License-Identifier: Apache-2.0
/*
 * xdp_steer: decides, for every frame an Espada interface receives, whether
 * the user-space dataplane (an AF_XDP socket) or the kernel gets it.
 *
 * Outside (WAN): ESP (IP protocol 50) and UDP-encapsulated ESP (RFC 3948:
 * destination port 4500, first four payload bytes non-zero) addressed to one
 * of the gateway's own addresses go to AF_XDP. Everything else goes to the
 * kernel: ARP, ND, IKE on 500 and on 4500 (non-ESP marker), NAT-keepalives,
 * other traffic to the gateway, and transit traffic (the dataplane only
 * terminates ESP on the outside; it never forwards clear traffic there).
 *
 * One exception for transit: Tunnel Endpoint Discovery (Cisco TED). A
 * peer looking for the gateway that protects a host sends an IKEv1 probe
 * to the host itself, so it arrives here addressed to a host behind us. An
 * unfragmented UDP datagram to port 500, not to one of our addresses, whose
 * payload looks like an ISAKMP header (28 to 1500 bytes, version 0x10,
 * exchange type 243: Espada's TED),
 * goes to AF_XDP: the dataplane hands it to the control process instead of
 * forwarding it. Everything else in transit (IKEv2, other UDP/500,
 * fragments) stays with the kernel.
 *
 * Path-MTU discovery for our ESP: an ICMP "fragmentation needed" (IPv4
 * type 3 code 4) or ICMPv6 "packet too big" (type 2 code 0) addressed to
 * the gateway, not itself a fragment, whose quoted packet is ESP (protocol
 * 50) or UDP from port 4500 (NAT-T ESP) sent from one of the gateway's
 * addresses, quoted as far as a non-zero SPI, goes to AF_XDP: the
 * dataplane sent that ESP and holds its SA, the kernel has neither. The quoted header's next header must be 50 or 17
 * itself (no extension headers are walked in the quote). ESP steering off
 * (or NAT-T off) leaves errors about ESP (or UDP/4500) with the kernel,
 * like the ESP itself. Every other ICMP keeps the rules below.
 *
 * Port address translation (seed 003's `ip nat inside source ... overload`):
 * when the dataplane gives an outside interface a PAT port range, IPv4
 * return traffic of translations also goes to AF_XDP: TCP and UDP to a
 * destination port in the range, ICMP echo replies whose identifier is in
 * it, and ICMP errors quoting a TCP/UDP packet sent from a port in the range
 * (or an echo request with such an identifier). The range never holds 500 or
 * 4500 (the dataplane refuses it), so IKE keeps reaching the kernel.
 *
 * Inside (LAN): ARP, ND, traffic to the gateway itself and broadcast,
 * multicast or link-local destinations go to the kernel; every other IPv4 or
 * IPv6 packet goes to AF_XDP to be routed, encrypted or NATed; other
 * ethertypes go to the kernel.
 *
 * Fragments: where a fragment goes may only depend on fields every fragment
 * of the datagram carries (addresses, protocol), or the pieces would end up
 * split between two reassemblers. So fragments of ESP follow ESP (to the
 * dataplane, whose worker reassembles before decapsulation, RFC 4303
 * §3.4.1), and fragments of anything else addressed to the gateway go to the
 * kernel, including fragmented UDP/4500 (large IKE messages are fragmented;
 * fragmented UDP-encapsulated ESP lands on the IKE socket once the kernel
 * has reassembled it, and the IKE daemon hands it to the dataplane).
 *
 * The rules are data: the dataplane fills the maps below (which interfaces
 * are inside or outside, the gateway's addresses, the AF_XDP sockets) and
 * reads the per-rule counters. An interface missing from steer_ifaces, a
 * malformed or truncated frame and a redirect without a socket all end in
 * XDP_PASS: the kernel is always the safe default.
 *
 * Self-contained on purpose (no kernel or libbpf headers): it builds with
 * nothing but clang, and the layout shared with the loader
 * (dataplane/src/io/xdp.rs) is spelled out here in one place.
 */

typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;

#define SEC(name) __attribute__((section(name), used))
#define __always_inline inline __attribute__((always_inline))
#define __uint(name, val) int(*name)[val]
#define __type(name, val) typeof(val) *name

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define ntohs(x) __builtin_bswap16(x)
#define htons(x) __builtin_bswap16(x)
#define htonl(x) __builtin_bswap32(x)
#else
#define ntohs(x) (x)
#define htons(x) (x)
#define htonl(x) (x)
#endif

/* uapi/linux/bpf.h */
struct xdp_md {
	__u32 data;
	__u32 data_end;
	__u32 data_meta;
	__u32 ingress_ifindex;
	__u32 rx_queue_index;
	__u32 egress_ifindex;
};

enum xdp_action { XDP_ABORTED = 0, XDP_DROP, XDP_PASS, XDP_TX, XDP_REDIRECT };

#define BPF_MAP_TYPE_HASH 1
#define BPF_MAP_TYPE_PERCPU_ARRAY 6
#define BPF_MAP_TYPE_XSKMAP 17

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
static long (*bpf_redirect_map)(void *map, __u64 key, __u64 flags) = (void *)51;

/* ---- The contract with the loader (dataplane/src/io/xdp.rs) ---- */

/* XSKMAP index = slot * STEER_MAX_QUEUES + rx queue. Every interface has
 * its own slot, so queue 0 of the LAN and queue 0 of the WAN name two
 * different sockets in one map shared by one program attached to both. */
#define STEER_MAX_SLOTS 16
#define STEER_MAX_QUEUES 64

#define STEER_ROLE_INSIDE 1
#define STEER_ROLE_OUTSIDE 2
/* Not a gateway port: a measuring receiver (espada-bench sink) takes every
 * TCP, UDP and ESP packet of the interface; ARP, ND, ICMP and the rest stay
 * with the kernel, so the host keeps answering its neighbours. */
#define STEER_ROLE_CAPTURE 3

/* Outside: ESP (protocol 50) to the gateway goes to AF_XDP. */
#define STEER_F_ESP 0x01
/* Outside: UDP-encapsulated ESP (NAT-T, port 4500) goes to AF_XDP; clear
 * it when NAT transparency is off and UDP/4500 belongs to the kernel. */
#define STEER_F_NATT 0x02

struct steer_iface {
	__u32 slot;  /* < STEER_MAX_SLOTS */
	__u8 role;   /* STEER_ROLE_* */
	__u8 flags;  /* STEER_F_* */
	__u16 pad;
	/* Outside: the PAT port range (host order, inclusive); pat_lo == 0
	 * means no PAT on this interface. */
	__u16 pat_lo;
	__u16 pat_hi;
};

/* A gateway address: IPv6, or IPv4 mapped (::ffff:a.b.c.d). */
struct steer_addr {
	__u8 addr[16];
};

/* Per-rule hit counters (index = rule). Everything below STEER_REDIRECT_ESP
 * is passed to the kernel. */
enum steer_rule {
	STEER_PASS_UNCONFIGURED = 0, /* interface not in steer_ifaces */
	STEER_PASS_MALFORMED,        /* truncated or invalid headers */
	STEER_PASS_OTHER_ETHERTYPE,  /* neither IPv4, IPv6 nor ARP */
	STEER_PASS_ARP,
	STEER_PASS_ND,               /* ICMPv6 133-137 */
	STEER_PASS_LOCAL,            /* to the gateway, not ESP or IKE */
	STEER_PASS_IKE,              /* UDP 500, UDP 4500 with non-ESP marker */
	STEER_PASS_NATT_KEEPALIVE,   /* UDP 4500, one byte 0xff */
	STEER_PASS_TRANSIT,          /* outside, not addressed to the gateway */
	STEER_PASS_LINK_SCOPE,       /* inside: broadcast, multicast, link-local */
	STEER_PASS_LOCAL_FRAGMENT,   /* fragment of a non-ESP datagram to us */
	STEER_REDIRECT_ESP,
	STEER_REDIRECT_NATT_ESP,
	STEER_REDIRECT_INSIDE,
	STEER_REDIRECT_PAT,          /* outside: return traffic of a translation */
	STEER_NO_SOCKET,             /* a redirect rule matched, no socket: passed */
	STEER_BAD_QUEUE,             /* slot or rx queue out of range: passed */
	/* Outside, transit IKEv1 to UDP 500 (a TED probe): to AF_XDP.
	 * Appended so the other counters keep their numbers; every rule from
	 * STEER_REDIRECT_ESP on that rule_for() returns redirects. */
	STEER_REDIRECT_TED,
	/* Capture role: TCP, UDP or ESP (fragments included), to AF_XDP. */
	STEER_REDIRECT_CAPTURE,
	/* Outside, to the gateway: ICMP fragmentation needed / ICMPv6 packet
	 * too big about ESP or NAT-T ESP the gateway sent (path-MTU
	 * discovery), to AF_XDP. */
	STEER_REDIRECT_PMTU,
	STEER_RULES,
};

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, STEER_MAX_SLOTS * STEER_MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} steer_xsks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, STEER_MAX_SLOTS);
	__type(key, __u32); /* ifindex */
	__type(value, struct steer_iface);
} steer_ifaces SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct steer_addr);
	__type(value, __u8);
} steer_locals SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, STEER_RULES);
	__type(key, __u32);
	__type(value, __u64);
} steer_counters SEC(".maps");

/* ---- Headers (only the fields we read) ---- */

#define ETH_P_IP 0x0800
#define ETH_P_ARP 0x0806
#define ETH_P_8021Q 0x8100
#define ETH_P_8021AD 0x88a8
#define ETH_P_IPV6 0x86dd

#define IPPROTO_HOPOPTS 0
#define IPPROTO_ICMP 1
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17
#define IPPROTO_ROUTING 43
#define IPPROTO_FRAGMENT 44
#define IPPROTO_ESP 50
#define IPPROTO_ICMPV6 58
#define IPPROTO_DSTOPTS 60

#define IKE_PORT 500
#define NATT_PORT 4500

/* IPv6 extension headers walked before giving up on finding the upper
 * layer; real traffic has at most two or three. */
#define IPV6_MAX_EXT 6

/* Upper-layer headers further in than this (a 9000-byte jumbo frame and
 * then some) are not looked at: the verifier needs a bound on packet
 * offsets well below 64 KiB. */
#define MAX_L4_OFF 0x3fff

struct ethhdr {
	__u8 dst[6];
	__u8 src[6];
	__u16 proto;
};

struct vlanhdr {
	__u16 tci;
	__u16 proto;
};

struct iphdr {
	__u8 ver_ihl;
	__u8 tos;
	__u16 tot_len;
	__u16 id;
	__u16 frag_off;
	__u8 ttl;
	__u8 protocol;
	__u16 check;
	__u32 saddr;
	__u32 daddr;
};

#define IP_MF 0x2000
#define IP_OFFSET 0x1fff

struct ipv6hdr {
	__u32 ver_tc_flow;
	__u16 payload_len;
	__u8 nexthdr;
	__u8 hop_limit;
	__u8 saddr[16];
	__u8 daddr[16];
};

struct ipv6_opthdr {
	__u8 nexthdr;
	__u8 hdrlen; /* 8-octet units, not counting the first 8 */
};

struct ipv6_fraghdr {
	__u8 nexthdr;
	__u8 reserved;
	__u16 frag_off; /* offset << 3 | M */
	__u32 id;
};

struct udphdr {
	__u16 source;
	__u16 dest;
	__u16 len;
	__u16 check;
};

/* What the parser learned about a frame's network layer. */
struct flow {
	struct steer_addr dst;
	__u8 ipv6;
	__u8 proto;     /* upper-layer protocol (after IPv6 extension headers) */
	__u8 fragment;  /* part of a fragmented datagram */
	__u8 l2_group;  /* destination MAC is broadcast or multicast */
	__u32 l4_off;   /* offset of the upper-layer header; 0 if absent */
};

static __always_inline void count(__u32 rule)
{
	__u64 *c = bpf_map_lookup_elem(&steer_counters, &rule);

	if (c)
		*c += 1; /* per-CPU: no atomics needed */
}

static __always_inline int is_local(struct steer_addr *a)
{
	return bpf_map_lookup_elem(&steer_locals, a) != 0;
}

/* Parses IPv4 at offset `off`. Returns a STEER_PASS_* rule to stop with, or
 * -1 when `f` is filled in. */
static __always_inline int parse_ipv4(void *data, void *end, __u32 off, struct flow *f)
{
	struct iphdr *ip = data + off;

	if ((void *)(ip + 1) > end)
		return STEER_PASS_MALFORMED;
	__u32 hl = (ip->ver_ihl & 0x0f) * 4;
	if ((ip->ver_ihl >> 4) != 4 || hl < sizeof(*ip) || ntohs(ip->tot_len) < hl)
		return STEER_PASS_MALFORMED;
	if ((void *)ip + hl > end)
		return STEER_PASS_MALFORMED;

	__builtin_memset(&f->dst, 0, sizeof(f->dst));
	f->dst.addr[10] = 0xff;
	f->dst.addr[11] = 0xff;
	__builtin_memcpy(&f->dst.addr[12], &ip->daddr, 4);
	f->ipv6 = 0;
	f->proto = ip->protocol;
	__u16 frag = ntohs(ip->frag_off);
	f->fragment = (frag & (IP_MF | IP_OFFSET)) != 0;
	/* Only the first fragment carries the upper-layer header. */
	f->l4_off = (frag & IP_OFFSET) ? 0 : off + hl;
	return -1;
}

/* Parses IPv6 at offset `off`, walking extension headers a bounded number
 * of times. Same return convention as parse_ipv4. */
static __always_inline int parse_ipv6(void *data, void *end, __u32 off, struct flow *f)
{
	struct ipv6hdr *ip6 = data + off;

	if ((void *)(ip6 + 1) > end)
		return STEER_PASS_MALFORMED;
	if ((ip6->ver_tc_flow & htonl(0xf0000000)) != htonl(0x60000000))
		return STEER_PASS_MALFORMED;

	__builtin_memcpy(&f->dst, ip6->daddr, sizeof(f->dst));
	f->ipv6 = 1;
	f->fragment = 0;

	__u8 nh = ip6->nexthdr;
	__u32 cur = off + sizeof(*ip6);
	int upper_visible = 1;

#pragma unroll
	for (int i = 0; i < IPV6_MAX_EXT; i++) {
		if (nh == IPPROTO_HOPOPTS || nh == IPPROTO_ROUTING || nh == IPPROTO_DSTOPTS) {
			struct ipv6_opthdr *o = data + cur;

			if ((void *)(o + 1) > end)
				return STEER_PASS_MALFORMED;
			nh = o->nexthdr;
			cur += ((__u32)o->hdrlen + 1) * 8;
		} else if (nh == IPPROTO_FRAGMENT) {
			struct ipv6_fraghdr *fh = data + cur;

			if ((void *)(fh + 1) > end)
				return STEER_PASS_MALFORMED;
			f->fragment = 1;
			nh = fh->nexthdr;
			cur += sizeof(*fh);
			/* A non-first fragment continues with payload bytes. */
			if (ntohs(fh->frag_off) & 0xfff8) {
				upper_visible = 0;
				break;
			}
		} else {
			break;
		}
	}
	f->proto = nh;
	f->l4_off = upper_visible ? cur : 0;
	return -1;
}

/* Neighbour discovery: router/neighbour solicitation and advertisement,
 * redirect (RFC 4861). */
static __always_inline int is_nd(void *data, void *end, struct flow *f)
{
	if (!f->ipv6 || f->proto != IPPROTO_ICMPV6 || !f->l4_off || f->l4_off > MAX_L4_OFF)
		return 0;
	__u8 *type = data + f->l4_off;
	if ((void *)(type + 1) > end)
		return 0;
	return *type >= 133 && *type <= 137;
}

/* Outside, UDP to the gateway: IKE, NAT-keepalive or UDP-encapsulated ESP
 * (RFC 3948 §2.2, §2.3). */
static __always_inline int classify_udp(void *data, void *end, struct flow *f, __u8 flags)
{
	if (f->l4_off > MAX_L4_OFF)
		return STEER_PASS_MALFORMED;
	struct udphdr *udp = data + f->l4_off;

	if ((void *)(udp + 1) > end)
		return STEER_PASS_MALFORMED;
	__u16 dport = ntohs(udp->dest);
	if (dport == IKE_PORT)
		return STEER_PASS_IKE;
	if (dport != NATT_PORT)
		return STEER_PASS_LOCAL;

	/* The UDP length, not the frame: Ethernet pads short frames. */
	__u32 ulen = ntohs(udp->len);
	if (ulen < sizeof(*udp) || (void *)udp + ulen > end)
		return STEER_PASS_MALFORMED;
	__u32 plen = ulen - sizeof(*udp);
	__u8 *payload = (void *)(udp + 1);

	if (plen == 1) {
		if ((void *)(payload + 1) > end)
			return STEER_PASS_MALFORMED;
		return payload[0] == 0xff ? STEER_PASS_NATT_KEEPALIVE : STEER_PASS_LOCAL;
	}
	if (plen < 4)
		return STEER_PASS_LOCAL;
	if ((void *)(payload + 4) > end)
		return STEER_PASS_MALFORMED;
	if ((payload[0] | payload[1] | payload[2] | payload[3]) == 0)
		return STEER_PASS_IKE; /* non-ESP marker */
	/* An ESP header (SPI + sequence number) or it is not ESP. */
	if (plen < 8 || !(flags & STEER_F_NATT))
		return STEER_PASS_LOCAL;
	return STEER_REDIRECT_NATT_ESP;
}

/* ISAKMP (RFC 2408 §3.1): a 28-byte header whose byte 17 is the version,
 * 0x10 for IKEv1, and byte 18 the exchange type: 243 (private use) is
 * Espada's TED probe and response (control/src/ike/wire/ikev1/ted.rs).
 * Only those are taken: other IKE crossing the gateway is not ours. */
#define ISAKMP_HDR_LEN 28
#define ISAKMP_VERSION_OFF 17
#define ISAKMP_EXCHANGE_OFF 18
#define ISAKMP_V1 0x10
#define ISAKMP_EXCHANGE_TED 243
/* The longest probe the dataplane hands on (MAX_TED_PROBE_LEN in
 * dataplane/src/api/messages.rs); a longer one stays in transit. */
#define TED_MAX_LEN 1500

/* Outside, not to the gateway: a TED probe (an IKEv1 packet to UDP 500 of
 * a host behind us)? Fragments are never probes (a decision by ports would
 * split the datagram between the kernel and the dataplane). */
static __always_inline int is_ted_probe(void *data, void *end, struct flow *f)
{
	/* Not a fragment, so the upper-layer header is there (l4_off != 0);
	 * testing that too lets clang fold both tests into one range check
	 * the verifier cannot follow. */
	if (f->proto != IPPROTO_UDP || f->fragment || f->l4_off > MAX_L4_OFF)
		return 0;
	struct udphdr *udp = data + f->l4_off;

	if ((void *)(udp + 1) > end)
		return 0;
	if (ntohs(udp->dest) != IKE_PORT)
		return 0;
	/* The UDP length, not the frame: Ethernet pads short frames. */
	__u32 ulen = ntohs(udp->len);
	if (ulen < sizeof(*udp) + ISAKMP_HDR_LEN || ulen > sizeof(*udp) + TED_MAX_LEN ||
	    (void *)udp + ulen > end)
		return 0;
	__u8 *isakmp = (void *)(udp + 1);

	if ((void *)(isakmp + ISAKMP_HDR_LEN) > end)
		return 0;
	return isakmp[ISAKMP_VERSION_OFF] == ISAKMP_V1 &&
	       isakmp[ISAKMP_EXCHANGE_OFF] == ISAKMP_EXCHANGE_TED;
}

static __always_inline int in_pat_range(__u16 port, struct steer_iface *cfg)
{
	return cfg->pat_lo != 0 && port >= cfg->pat_lo && port <= cfg->pat_hi;
}

/* The first four bytes of the upper-layer header: source and destination
 * ports, or ICMP type, code and checksum. */
struct l4head {
	__u16 a;
	__u16 b;
};

/* ICMP (RFC 792): type, code, checksum, then identifier or unused bytes. */
struct icmphdr {
	__u8 type;
	__u8 code;
	__u16 check;
	__u16 id;
	__u16 seq;
};

#define ICMP_ECHOREPLY 0
#define ICMP_DEST_UNREACH 3
#define ICMP_ECHO 8
#define ICMP_TIME_EXCEEDED 11
#define ICMP_PARAMETERPROB 12
/* Code of ICMP_DEST_UNREACH: fragmentation needed and DF set (RFC 1191). */
#define ICMP_FRAG_NEEDED 4
/* ICMPv6 packet too big (RFC 4443 §3.2, RFC 8201), code 0. */
#define ICMPV6_PKT_TOOBIG 2

/* Outside, IPv4 to the gateway, not ESP, IKE or a fragment: is it return
 * traffic of a PAT translation? */
static __always_inline int is_pat_return(void *data, void *end, struct flow *f,
					 struct steer_iface *cfg)
{
	if (f->ipv6 || cfg->pat_lo == 0 || f->l4_off > MAX_L4_OFF)
		return 0;
	if (f->proto == IPPROTO_TCP || f->proto == IPPROTO_UDP) {
		struct l4head *l4 = data + f->l4_off;

		if ((void *)(l4 + 1) > end)
			return 0;
		return in_pat_range(ntohs(l4->b), cfg);
	}
	if (f->proto != IPPROTO_ICMP)
		return 0;
	struct icmphdr *icmp = data + f->l4_off;

	if ((void *)(icmp + 1) > end)
		return 0;
	if (icmp->type == ICMP_ECHOREPLY)
		return in_pat_range(ntohs(icmp->id), cfg);
	if (icmp->type != ICMP_DEST_UNREACH && icmp->type != ICMP_TIME_EXCEEDED &&
	    icmp->type != ICMP_PARAMETERPROB)
		return 0;
	/* The quoted packet is one we sent: its source port (or echo
	 * identifier) names the translation. */
	struct iphdr *q = (void *)(icmp + 1);

	if ((void *)(q + 1) > end)
		return 0;
	__u32 qhl = (q->ver_ihl & 0x0f) * 4;
	if (qhl < sizeof(*q))
		return 0;
	if (q->protocol == IPPROTO_TCP || q->protocol == IPPROTO_UDP) {
		struct l4head *ports = (void *)q + qhl;

		if ((void *)(ports + 1) > end)
			return 0;
		return in_pat_range(ntohs(ports->a), cfg);
	}
	struct icmphdr *echo = (void *)q + qhl;

	if ((void *)(echo + 1) > end)
		return 0;
	if (q->protocol == IPPROTO_ICMP && echo->type == ICMP_ECHO)
		return in_pat_range(ntohs(echo->id), cfg);
	return 0;
}

/* Outside, to the gateway, not a fragment: an ICMP fragmentation needed
 * (IPv4) or ICMPv6 packet too big about ESP, or UDP-encapsulated ESP, that
 * one of the gateway's addresses sent? The quote follows the 8-byte ICMP
 * header: the invoking packet's IP header (options skipped by IHL), then at
 * least 8 bytes of what it carried (RFC 792, RFC 4443 §3.2). IPv6: the
 * quoted header's next header must be ESP or UDP directly. */
static __always_inline int is_pmtu_for_our_esp(void *data, void *end, struct flow *f,
					       __u8 flags)
{
	if (f->l4_off > MAX_L4_OFF)
		return 0;
	if (f->proto != (f->ipv6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP))
		return 0;
	struct icmphdr *icmp = data + f->l4_off;

	if ((void *)(icmp + 1) > end)
		return 0;

	struct steer_addr src = {};
	__u8 qproto;
	__u16 *qsport; /* the quoted UDP source port, if UDP */

	if (f->ipv6) {
		if (icmp->type != ICMPV6_PKT_TOOBIG || icmp->code != 0)
			return 0;
		struct ipv6hdr *q = (void *)(icmp + 1);

		if ((void *)(q + 1) > end)
			return 0;
		if ((q->ver_tc_flow & htonl(0xf0000000)) != htonl(0x60000000))
			return 0;
		qproto = q->nexthdr;
		qsport = (void *)(q + 1);
		__builtin_memcpy(&src, q->saddr, sizeof(src));
	} else {
		if (icmp->type != ICMP_DEST_UNREACH || icmp->code != ICMP_FRAG_NEEDED)
			return 0;
		struct iphdr *q = (void *)(icmp + 1);

		if ((void *)(q + 1) > end)
			return 0;
		__u32 qhl = (q->ver_ihl & 0x0f) * 4;
		if ((q->ver_ihl >> 4) != 4 || qhl < sizeof(*q) || (void *)q + qhl > end)
			return 0;
		qproto = q->protocol;
		/* A later fragment of UDP quotes payload, not ports. */
		if (qproto == IPPROTO_UDP && (ntohs(q->frag_off) & IP_OFFSET))
			return 0;
		qsport = (void *)q + qhl;
		src.addr[10] = 0xff;
		src.addr[11] = 0xff;
		__builtin_memcpy(&src.addr[12], &q->saddr, 4);
	}

	if (qproto == IPPROTO_ESP) {
		if (!(flags & STEER_F_ESP))
			return 0;
	} else if (qproto == IPPROTO_UDP) {
		if (!(flags & STEER_F_NATT))
			return 0;
		if ((void *)(qsport + 1) > end)
			return 0;
		if (ntohs(*qsport) != NATT_PORT)
			return 0;
	} else {
		return 0;
	}
	/* The SPI must be quoted, and not the non-ESP marker's zero: errors
	 * about the kernel's own IKE on 4500, and quotes too short to name an
	 * SA, stay with the kernel, which learns its path MTU from them. */
	__u32 *spi = qproto == IPPROTO_UDP ? (void *)qsport + 8 : (void *)qsport;

	if ((void *)(spi + 1) > end || *spi == 0)
		return 0;
	return is_local(&src);
}

static __always_inline int outside_rule(void *data, void *end, struct flow *f,
					struct steer_iface *cfg)
{
	if (is_nd(data, end, f))
		return STEER_PASS_ND;
	if (!is_local(&f->dst))
		return is_ted_probe(data, end, f) ? STEER_REDIRECT_TED : STEER_PASS_TRANSIT;
	if (f->proto == IPPROTO_ESP)
		return (cfg->flags & STEER_F_ESP) ? STEER_REDIRECT_ESP : STEER_PASS_LOCAL;
	if (f->fragment)
		return STEER_PASS_LOCAL_FRAGMENT;
	if (is_pmtu_for_our_esp(data, end, f, cfg->flags))
		return STEER_REDIRECT_PMTU;
	if (f->proto == IPPROTO_UDP) {
		int rule = classify_udp(data, end, f, cfg->flags);

		if (rule != STEER_PASS_LOCAL || !is_pat_return(data, end, f, cfg))
			return rule;
		return STEER_REDIRECT_PAT;
	}
	if (is_pat_return(data, end, f, cfg))
		return STEER_REDIRECT_PAT;
	return STEER_PASS_LOCAL;
}

/* Destinations that are never forwarded: the kernel answers or drops them. */
static __always_inline int link_scope(struct flow *f)
{
	__u8 *a = f->dst.addr;

	if (f->l2_group)
		return 1;
	if (f->ipv6)
		/* multicast ff00::/8, link-local unicast fe80::/10 */
		return a[0] == 0xff || (a[0] == 0xfe && (a[1] & 0xc0) == 0x80);
	/* multicast 224/4 and limited broadcast, link-local 169.254/16,
	 * "this network" 0/8, loopback 127/8 */
	return a[12] >= 224 || (a[12] == 169 && a[13] == 254) || a[12] == 0 || a[12] == 127;
}

static __always_inline int inside_rule(void *data, void *end, struct flow *f)
{
	if (is_nd(data, end, f))
		return STEER_PASS_ND;
	if (is_local(&f->dst))
		return STEER_PASS_LOCAL;
	if (link_scope(f))
		return STEER_PASS_LINK_SCOPE;
	return STEER_REDIRECT_INSIDE;
}

/* A measuring receiver: everything a traffic generator sends (TCP, UDP,
 * ESP) to AF_XDP, except to broadcast or multicast MACs. */
static __always_inline int capture_rule(void *data, void *end, struct flow *f)
{
	if (is_nd(data, end, f))
		return STEER_PASS_ND;
	if (f->l2_group)
		return STEER_PASS_LINK_SCOPE;
	if (f->proto == IPPROTO_TCP || f->proto == IPPROTO_UDP || f->proto == IPPROTO_ESP)
		return STEER_REDIRECT_CAPTURE;
	return STEER_PASS_LOCAL;
}

static __always_inline int rule_for(struct xdp_md *ctx, struct steer_iface *cfg)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct flow f = {};

	if ((void *)(eth + 1) > end)
		return STEER_PASS_MALFORMED;
	__u16 proto = ntohs(eth->proto);
	__u32 off = sizeof(*eth);

	/* One 802.1Q or 802.1ad tag. */
	if (proto == ETH_P_8021Q || proto == ETH_P_8021AD) {
		struct vlanhdr *vlan = data + off;

		if ((void *)(vlan + 1) > end)
			return STEER_PASS_MALFORMED;
		proto = ntohs(vlan->proto);
		off += sizeof(*vlan);
	}
	if (proto == ETH_P_ARP)
		return STEER_PASS_ARP;

	int stop;
	if (proto == ETH_P_IP)
		stop = parse_ipv4(data, end, off, &f);
	else if (proto == ETH_P_IPV6)
		stop = parse_ipv6(data, end, off, &f);
	else
		return STEER_PASS_OTHER_ETHERTYPE;
	if (stop >= 0)
		return stop;
	f.l2_group = eth->dst[0] & 1;

	if (cfg->role == STEER_ROLE_OUTSIDE)
		return outside_rule(data, end, &f, cfg);
	if (cfg->role == STEER_ROLE_CAPTURE)
		return capture_rule(data, end, &f);
	return inside_rule(data, end, &f);
}

SEC("xdp")
int xdp_steer(struct xdp_md *ctx)
{
	__u32 ifindex = ctx->ingress_ifindex;
	struct steer_iface *cfg = bpf_map_lookup_elem(&steer_ifaces, &ifindex);

	if (!cfg || (cfg->role != STEER_ROLE_INSIDE && cfg->role != STEER_ROLE_OUTSIDE &&
		     cfg->role != STEER_ROLE_CAPTURE)) {
		count(STEER_PASS_UNCONFIGURED);
		return XDP_PASS;
	}

	int rule = rule_for(ctx, cfg);
	count(rule);
	if (rule < STEER_REDIRECT_ESP)
		return XDP_PASS;

	__u32 queue = ctx->rx_queue_index;
	if (cfg->slot >= STEER_MAX_SLOTS || queue >= STEER_MAX_QUEUES) {
		count(STEER_BAD_QUEUE);
		return XDP_PASS;
	}
	/* The lower bits of the flags are the action when the map has no
	 * socket at this index: the kernel then gets the frame. */
	long action = bpf_redirect_map(&steer_xsks, cfg->slot * STEER_MAX_QUEUES + queue, XDP_PASS);
	if (action != XDP_REDIRECT)
		count(STEER_NO_SOCKET);
	return action;
}

char _license[] SEC("license") = "Apache-2.0";
