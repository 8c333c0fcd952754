#!/usr/bin/env python3
"""The independent IKE decoder for control/tests/scapy_ike.rs: scapy's
ISAKMP (scapy.layers.isakmp) and IKEv2 (scapy.contrib.ikev2) dissectors.

stdin: a JSON array of requests, stdout: a JSON array of answers.
  {"op": "parse", "hex": ...}  -> the message's fields as scapy reads them
  {"op": "build", "name": ...} -> {"hex": ..., "fields": ...}: a message
                                  scapy built, and scapy's reading of it

The field layout is the one scapy_ike.rs produces from Espada's decoder,
so the two can be compared as JSON values. Where scapy 2.5 has no class for
a payload (IKEv1 Notification and Delete, IKEv2 Delete) it gives the body
as `load` and the few fixed fields are unpacked here with struct. Known
scapy 2.5 quirks worked around: IKEv1 proposal lengths leave out the SPI
(so builds set `length`), IKEv2 IDi cannot compute its own length, an
IKEv2 IPv6 traffic selector's length defaults to 20 instead of 40 (kept
in one message to check Espada refuses it), and IKEv2 payloads do not
chain their Next Payload when built (set by hand).
"""

import json
import socket
import struct
import sys

from scapy.config import conf
from scapy.layers.isakmp import (
    ISAKMP,
    ISAKMP_payload_Hash,
    ISAKMP_payload_ID,
    ISAKMP_payload_KE,
    ISAKMP_payload_Nonce,
    ISAKMP_payload_Proposal,
    ISAKMP_payload_SA,
    ISAKMP_payload_Transform,
    ISAKMP_payload_VendorID,
    ISAKMPAttributeTypes,
)
from scapy.contrib.ikev2 import (
    IKEv2,
    IKEv2_payload_AUTH,
    IKEv2_payload_Encrypted,
    IKEv2_payload_IDi,
    IKEv2_payload_KE,
    IKEv2_payload_Nonce,
    IKEv2_payload_Notify,
    IKEv2_payload_Proposal,
    IKEv2_payload_SA,
    IKEv2_payload_Transform,
    IKEv2_payload_TSi,
    IKEv2_payload_TSr,
    IKEv2_payload_VendorID,
    IPv4TrafficSelector,
    IPv6TrafficSelector,
)
from scapy.packet import NoPayload, Raw, raw

conf.verb = 0


def hx(b):
    return bytes(b).hex()


def header(pkt, spi_names):
    i, r = spi_names
    return {
        "ispi": hx(getattr(pkt, i)),
        "rspi": hx(getattr(pkt, r)),
        "next": int(pkt.next_payload),
        "version": int(pkt.version),
        "exchange": int(pkt.exch_type),
        "flags": int(pkt.flags),
        "message_id": int(pkt.id),
        "length": int(pkt.length),
    }


def chain(layer):
    """The layers of a payload chain, then any bytes scapy could not place."""
    out = []
    while not isinstance(layer, NoPayload):
        if isinstance(layer, Raw):
            out.append({"leftover": hx(layer.load)})
            break
        out.append(layer)
        layer = layer.payload
    return out


# ---- IKEv1 ----

ATTR_BY_NAME = {name: (num, values) for name, (num, values, _) in ISAKMPAttributeTypes.items()}


def v1_attribute(pair):
    """scapy gives (name or number, value name or number); back to numbers."""
    t, v = pair
    if isinstance(t, str):
        t, values = ATTR_BY_NAME[t]
        if isinstance(v, str):
            v = values[v]
    return [t, v]


def v1_sa(p):
    proposals = []
    for prop in chain(p.prop):
        if isinstance(prop, dict):
            proposals.append(prop)
            continue
        transforms = []
        for t in chain(prop.trans):
            if isinstance(t, dict):
                transforms.append(t)
                continue
            transforms.append(
                {
                    "number": t.num,
                    "id": t.id,
                    "attributes": [v1_attribute(a) for a in (t.transforms or [])],
                }
            )
        proposals.append(
            {
                "number": prop.proposal,
                "protocol": prop.proto,
                "spi": hx(prop.SPI),
                "declared_transforms": prop.trans_nb,
                "transforms": transforms,
            }
        )
    return {"type": 1, "doi": p.DOI, "situation": p.situation, "proposals": proposals}


def v1_payload(ptype, p):
    if isinstance(p, dict):
        return p
    if ptype == 1:
        return v1_sa(p)
    if ptype == 5:
        return {
            "type": 5,
            "id_type": p.IDtype,
            "protocol": p.ProtoID,
            "port": p.Port,
            "data": hx(p.load),
        }
    if ptype == 11:
        doi, proto, spi_size, ntype = struct.unpack("!IBBH", p.load[:8])
        return {
            "type": 11,
            "doi": doi,
            "protocol": proto,
            "spi": hx(p.load[8 : 8 + spi_size]),
            "notify_type": ntype,
            "data": hx(p.load[8 + spi_size :]),
        }
    if ptype == 12:
        doi, proto, spi_size, n = struct.unpack("!IBBH", p.load[:8])
        spis = [hx(p.load[8 + k * spi_size : 8 + (k + 1) * spi_size]) for k in range(n)]
        return {"type": 12, "doi": doi, "protocol": proto, "spi_size": spi_size, "spis": spis}
    return {"type": ptype, "data": hx(p.load)}


def parse_v1(data):
    pkt = ISAKMP(data)
    out = header(pkt, ("init_cookie", "resp_cookie"))
    if int(pkt.flags) & 1:
        out["encrypted"] = hx(pkt.payload.load) if isinstance(pkt.payload, Raw) else ""
        out["payloads"] = []
        return out
    payloads = []
    ptype = int(pkt.next_payload)
    for layer in chain(pkt.payload):
        payloads.append(v1_payload(ptype, layer))
        if isinstance(layer, dict):
            break
        ptype = int(layer.next_payload)
    out["payloads"] = payloads
    return out


# ---- IKEv2 ----


def critical(p):
    flags = p.flags if hasattr(p, "flags") else p.res
    return bool(int(flags) & 0x80)


def v2_ip(value, id_type):
    if id_type == 1:
        return socket.inet_pton(socket.AF_INET, value).hex()
    if id_type == 5:
        return socket.inet_pton(socket.AF_INET6, value).hex()
    return hx(value)


def v2_sa(p):
    proposals = []
    for prop in chain(p.prop):
        if isinstance(prop, dict):
            proposals.append(prop)
            continue
        transforms = []
        for t in chain(prop.trans):
            if isinstance(t, dict):
                transforms.append(t)
                continue
            key_length = None
            if t.length > 8:
                assert t.length == 12, "scapy only reads the Key Length attribute"
                key_length = int(t.key_length) & 0xFFFF
            transforms.append({"type": t.transform_type, "id": t.transform_id, "key_length": key_length})
        proposals.append(
            {
                "number": prop.proposal,
                "protocol": prop.proto,
                "spi": hx(prop.SPI),
                "declared_transforms": prop.trans_nb,
                "transforms": transforms,
            }
        )
    return {"proposals": proposals}


def v2_selector(ts):
    if ts.TS_type == 7:
        start, end = ts.starting_address_v4, ts.ending_address_v4
    else:
        start, end = ts.starting_address_v6, ts.ending_address_v6
    return {
        "ts_type": ts.TS_type,
        "protocol": ts.IP_protocol_ID,
        "start_port": ts.start_port,
        "end_port": ts.end_port,
        "start": start,
        "end": end,
    }


def v2_payload(ptype, p):
    if isinstance(p, dict):
        return p
    out = {"type": ptype, "critical": critical(p)}
    if ptype == 33:
        out.update(v2_sa(p))
    elif ptype == 34:
        out.update({"group": p.group, "data": hx(p.load)})
    elif ptype in (35, 36):
        out.update({"id_type": p.IDtype, "data": v2_ip(p.ID, p.IDtype)})
    elif ptype == 39:
        out.update({"method": p.auth_type, "data": hx(p.load)})
    elif ptype == 41:
        out.update(
            {
                "protocol": p.proto,
                "spi": hx(p.SPI),
                "notify_type": p.type,
                "data": hx(p.load),
            }
        )
    elif ptype == 42:
        body = bytes(p.vendorID)  # scapy 2.5 names the Delete body vendorID
        proto, spi_size, n = struct.unpack("!BBH", body[:4])
        spis = [hx(body[4 + k * spi_size : 4 + (k + 1) * spi_size]) for k in range(n)]
        out.update({"protocol": proto, "spi_size": spi_size, "spis": spis})
    elif ptype == 43:
        out.update({"data": hx(p.vendorID)})
    elif ptype in (44, 45):
        out.update(
            {
                "declared": p.number_of_TSs,
                "selectors": [v2_selector(ts) for ts in p.traffic_selector],
            }
        )
    elif ptype == 46:
        out.update({"first": int(p.next_payload), "data": hx(p.load)})
    else:
        out.update({"data": hx(p.load)})
    return out


def parse_v2(data):
    pkt = IKEv2(data)
    assert isinstance(pkt, IKEv2), "scapy dispatched to ISAKMP"
    out = header(pkt, ("init_SPI", "resp_SPI"))
    payloads = []
    ptype = int(pkt.next_payload)
    for layer in chain(pkt.payload):
        payloads.append(v2_payload(ptype, layer))
        if isinstance(layer, dict) or ptype == 46:
            break
        ptype = int(layer.next_payload)
    out["payloads"] = payloads
    return out


def parse(data):
    major = data[17] >> 4
    return parse_v1(data) if major == 1 else parse_v2(data)


# ---- messages scapy builds ----

NAT_T = bytes.fromhex("4a131c81070358455c5728f20e95452f")
DPD = bytes.fromhex("afcad71368a1f1c96b8696fc77570100")


def build_main_mode_1():
    t1 = ISAKMP_payload_Transform(
        num=1,
        id=1,
        transforms=[
            ("Encryption", "AES-CBC"),
            ("KeyLength", 256),
            ("Hash", "SHA"),
            ("Authentication", "PSK"),
            ("GroupDesc", "1536MODPgr"),
            ("LifeType", "Seconds"),
            ("LifeDuration", 86400),
        ],
    )
    t2 = ISAKMP_payload_Transform(
        num=2,
        id=1,
        transforms=[("Encryption", "3DES-CBC"), ("Hash", "MD5"), ("Authentication", "PSK"), ("GroupDesc", "768MODPgr")],
    )
    prop = ISAKMP_payload_Proposal(proposal=1, proto=1, trans_nb=2, trans=t1 / t2)
    return (
        ISAKMP(init_cookie=b"\x5a" * 8, resp_cookie=b"\0" * 8, exch_type=2)
        / ISAKMP_payload_SA(prop=prop)
        / ISAKMP_payload_VendorID(load=NAT_T)
        / ISAKMP_payload_VendorID(load=DPD)
    )


def build_quick_mode():
    trans = ISAKMP_payload_Transform(num=1, id=12, transforms=[(1, 1), (2, 3600), (4, 61443), (5, 2), (6, 128)])
    spi = b"\xca\xfe\xba\xbe"
    prop = ISAKMP_payload_Proposal(
        proposal=1, proto=3, SPI=spi, trans_nb=1, length=8 + len(spi) + len(raw(trans)), trans=trans
    )
    subnet = socket.inet_aton("198.18.1.0") + socket.inet_aton("255.255.255.0")
    return (
        ISAKMP(init_cookie=b"\x5a" * 8, resp_cookie=b"\xa5" * 8, exch_type=32, id=0x01020304)
        / ISAKMP_payload_Hash(load=b"\x11" * 20)
        / ISAKMP_payload_SA(prop=prop)
        / ISAKMP_payload_Nonce(load=b"\x22" * 16)
        / ISAKMP_payload_KE(load=b"\x33" * 96)
        / ISAKMP_payload_ID(IDtype=4, load=subnet)
        / ISAKMP_payload_ID(IDtype=1, ProtoID=17, Port=500, load=socket.inet_aton("198.18.2.1"))
    )


def build_ike_sa_init():
    trans = (
        IKEv2_payload_Transform(next_payload=3, transform_type=1, transform_id=12, length=12, key_length=256)
        / IKEv2_payload_Transform(next_payload=3, transform_type=2, transform_id=5)
        / IKEv2_payload_Transform(next_payload=3, transform_type=3, transform_id=12)
        / IKEv2_payload_Transform(next_payload=0, transform_type=4, transform_id=14)
    )
    prop = IKEv2_payload_Proposal(next_payload=0, proposal=1, proto=1, trans_nb=4, trans=trans)
    return (
        IKEv2(init_SPI=b"\x77" * 8, resp_SPI=b"\0" * 8, exch_type=34, flags="Initiator")
        / IKEv2_payload_SA(next_payload=34, prop=prop)
        / IKEv2_payload_KE(next_payload=40, group=14, load=b"\x44" * 256)
        / IKEv2_payload_Nonce(next_payload=41, load=b"\x55" * 32)
        / IKEv2_payload_Notify(next_payload=41, type=16388, load=b"\x66" * 20)
        / IKEv2_payload_Notify(next_payload=43, type=16389, load=b"\x67" * 20)
        / IKEv2_payload_VendorID(next_payload=0, vendorID=b"CISCO-DELETE-REASON")
    )


def build_ike_auth_clear(ts6_length=40):
    ts6 = {
        "IP_protocol_ID": 17,
        "start_port": 500,
        "end_port": 500,
        "starting_address_v6": "fd00::1",
        "ending_address_v6": "fd00::ff",
    }
    if ts6_length is not None:
        ts6["length"] = ts6_length
    return (
        IKEv2(init_SPI=b"\x77" * 8, resp_SPI=b"\x88" * 8, exch_type=35, flags="Initiator", id=1)
        / IKEv2_payload_IDi(next_payload=39, length=12, IDtype=1, ID="198.18.0.1")
        / IKEv2_payload_AUTH(next_payload=44, auth_type=2, load=b"\x99" * 20)
        / IKEv2_payload_TSi(
            next_payload=45,
            traffic_selector=[
                IPv4TrafficSelector(IP_protocol_ID=0, starting_address_v4="198.18.1.0", ending_address_v4="198.18.1.255")
            ],
        )
        / IKEv2_payload_TSr(next_payload=0, traffic_selector=[IPv6TrafficSelector(**ts6)])
    )


def build_ike_auth_sk():
    return IKEv2(init_SPI=b"\x77" * 8, resp_SPI=b"\x88" * 8, exch_type=35, flags="Response", id=1) / IKEv2_payload_Encrypted(
        next_payload=36, load=bytes(range(64))
    )


BUILDERS = {
    "main_mode_1": build_main_mode_1,
    "quick_mode": build_quick_mode,
    "ike_sa_init": build_ike_sa_init,
    "ike_auth_clear": build_ike_auth_clear,
    "ike_auth_sk": build_ike_auth_sk,
    "ts6_scapy_default_length": lambda: build_ike_auth_clear(ts6_length=None),
}


def answer(req):
    if req["op"] == "parse":
        return parse(bytes.fromhex(req["hex"]))
    data = raw(BUILDERS[req["name"]]())
    return {"hex": data.hex(), "fields": parse(data)}


def main():
    requests = json.load(sys.stdin)
    json.dump([answer(r) for r in requests], sys.stdout)


if __name__ == "__main__":
    main()
