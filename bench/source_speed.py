"""What proving a Microsoft 365 source costs: the tenant check beside today's network trust.

Two gateways, identical but for who may relay: one trusts 127.0.0.1 as a `network` source,
the other takes it as Exchange Online (a `microsoft365` source whose ranges are loopback) and
checks every message's tenant stamp. Both are sent the same Exchange Online-shaped messages
over STARTTLS by the same asyncio client, interleaved three times; the cost per message is
the difference of the two times per message. The check itself is also timed alone, on the
same header block, which the noise of a shared machine cannot hide.
"""

from __future__ import annotations

import asyncio
import ssl
import statistics
import sys
import tempfile
import time
import timeit
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

TENANT = "6f1c2a3b-4d5e-4f60-8a9b-0c1d2e3f4a5b"
SENDER, RCPT = "bench@example.sch.uk", "rcpt@gmail.com"


def exo_message(size: int = 10240) -> bytes:
    """A message with the header block Exchange Online gives mail leaving a tenant (~2 KB)."""
    head = (
        "Received: from DB9PR01MB1234.eurprd01.prod.exchangelabs.com (2603:10a6:10:1::1) by\r\n"
        " DB9PR01MB5678.eurprd01.prod.exchangelabs.com with HTTPS; Tue, 1 Dec 2026 10:00:00\r\n"
        " +0000\r\n"
        f"From: <{SENDER}>\r\nTo: <{RCPT}>\r\nSubject: Trip on Friday\r\n"
        "Date: Tue, 1 Dec 2026 10:00:00 +0000\r\nMessage-ID: <b1@example.sch.uk>\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\nMIME-Version: 1.0\r\n"
        "X-MS-Has-Attach:\r\nX-MS-TNEF-Correlator:\r\n"
        "X-MS-PublicTrafficType: Email\r\n"
        "X-MS-TrafficTypeDiagnostic: DB9PR01MB1234:EE_|DB9PR01MB5678:EE_\r\n"
        "X-MS-Office365-Filtering-Correlation-Id: 1c1f3a4e-0000-4000-8000-00000000abcd\r\n"
        "X-Microsoft-Antispam: BCL:0;ARA:13230040|1800799024|366016|376014;\r\n"
        "X-Microsoft-Antispam-Message-Info:\r\n"
        + "".join(f" {'Qk' * 36}{i:04d}\r\n" for i in range(12)) +
        "X-OriginatorOrg: example.sch.uk\r\n"
        "X-MS-Exchange-CrossTenant-Network-Message-Id: 1c1f3a4e-0000-4000-8000-00000000abcd\r\n"
        "X-MS-Exchange-CrossTenant-AuthAs: Internal\r\n"
        "X-MS-Exchange-CrossTenant-AuthSource: DB9PR01MB1234.eurprd01.prod.outlook.com\r\n"
        "X-MS-Exchange-CrossTenant-OriginalArrivalTime: 01 Dec 2026 10:00:00.0000 (UTC)\r\n"
        "X-MS-Exchange-CrossTenant-FromEntityHeader: Hosted\r\n"
        f"X-MS-Exchange-CrossTenant-Id: {TENANT}\r\n"
        "X-MS-Exchange-CrossTenant-MailboxType: HOSTED\r\n"
        "X-MS-Exchange-Transport-CrossTenantHeadersStamped: DB9PR01MB5678\r\n\r\n")
    line = b"Please bring a packed lunch and a coat; the coach leaves at nine.\r\n"
    return head.encode() + line * (size // len(line))


def _config(folder: Path, port: int, upstream: int, pem: Path, m365: bool) -> str:
    from conftest import free_port, toml_dump

    source = ({"type": "microsoft365", "tenant_ids": [TENANT], "ranges": ["127.0.0.0/8"]}
              if m365 else {"type": "network", "networks": ["127.0.0.1/32"]})
    return toml_dump({
        "server": {"listen": f"127.0.0.1:{port}", "hostname": "mailguard.bench",
                   "tls_cert": str(pem), "tls_key": str(pem), "max_connections": 2000},
        "sources": {"m365" if m365 else "exchange": source},
        "upstream": {"url": f"smtp://127.0.0.1:{upstream}"},
        "organisation": {"name": "Bench Trust", "domains": ["example.sch.uk"]},
        "storage": {"data_dir": str(folder / "var")},
        "web": {"listen": f"127.0.0.1:{free_port()}"},
        "checks": {"identity": {"action": "reject"}},
    })


async def _send(port: int, ctx: ssl.SSLContext, raw: bytes, count: int, sessions: int) -> float:
    """Messages per second, each answered 250 (so accepted upstream), over STARTTLS."""
    import aiosmtplib

    async def session(n: int) -> None:
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, tls_context=ctx,
                               start_tls=True, timeout=60)
        await smtp.connect()
        for _ in range(n):
            errors, _ = await smtp.sendmail(SENDER, [RCPT], raw)
            assert not errors
        await smtp.quit()

    started = time.perf_counter()
    await asyncio.gather(*(session(count // sessions) for _ in range(sessions)))
    return (count // sessions * sessions) / (time.perf_counter() - started)


def check_alone(raw: bytes) -> dict[str, float]:
    """Microseconds per message for the admission decision and for the tenant proof alone."""
    from mailguard import mime
    from mailguard.sources import Source, Sources

    network = Sources((Source("exchange", "network", networks=_nets(["127.0.0.1/32"])),))
    m365 = Source("m365", "microsoft365", networks=_nets(["127.0.0.0/8"]),
                  tenant_ids=frozenset([TENANT]))
    cloud = Sources((m365,))
    head = raw[:mime.header_end(raw)]
    n = 20000
    admit_net = timeit.timeit(lambda: network.admit("127.0.0.1", False), number=n) / n * 1e6
    admit_m365 = timeit.timeit(lambda: cloud.admit("127.0.0.1", False), number=n) / n * 1e6
    # As the handler does it: find the header block, then read the stamps in it.
    prove = timeit.timeit(lambda: m365.refusal(raw[:mime.header_end(raw)], "Bench Trust"),
                          number=n) / n * 1e6
    assert m365.refusal(head, "Bench Trust") is None
    return {"admit_network_us": admit_net, "admit_m365_us": admit_m365, "tenant_proof_us": prove,
            "header_bytes": len(head)}


def _nets(items: list[str]) -> tuple:
    import ipaddress

    return tuple(ipaddress.ip_network(i) for i in items)


def measure(upstream_port: int, count: int = 3000, sessions: int = 10) -> dict[str, object]:
    import subprocess

    import trustme
    from conftest import free_port
    from postfix import wait_for_port

    raw = exo_message()
    folder = Path(tempfile.mkdtemp(prefix="mailguard-sources-"))
    ca = trustme.CA()
    pem = folder / "tls.pem"
    ca.issue_cert("mailguard.bench", "127.0.0.1").private_key_and_cert_chain_pem.write_to_path(
        str(pem))
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    procs, ports = [], {}
    try:
        for name, m365 in (("network", False), ("m365", True)):
            (folder / name).mkdir()
            port = ports[name] = free_port()
            config = folder / name / "mailguard.toml"
            config.write_text(_config(folder / name, port, upstream_port, pem, m365))
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "mailguard", "serve", "--config", str(config)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT))
            wait_for_port(port)
        asyncio.run(_send(ports["m365"], ctx, raw, 200, sessions))   # warm both
        asyncio.run(_send(ports["network"], ctx, raw, 200, sessions))
        runs = []
        for _ in range(3):
            net = asyncio.run(_send(ports["network"], ctx, raw, count, sessions))
            m365 = asyncio.run(_send(ports["m365"], ctx, raw, count, sessions))
            runs.append((net, m365))
    finally:
        for p in procs:
            p.terminate()
            p.wait(30)
    costs = sorted((1 / m - 1 / n) * 1000 for n, m in runs)
    return {"network_msg_s": statistics.median(n for n, _ in runs),
            "m365_msg_s": statistics.median(m for _, m in runs),
            "ratio": statistics.median(m / n for n, m in runs),
            "cost_ms": costs[1], "cost_ms_range": [costs[0], costs[2]],
            "alone": check_alone(raw)}


def report(r: dict) -> str:
    a = r["alone"]
    return (f"sources: a microsoft365 source with the tenant check, over STARTTLS, "
            f"{r['m365_msg_s']:.0f}/s beside network trust {r['network_msg_s']:.0f}/s = "
            f"{r['ratio']:.2f}x; difference {r['cost_ms']:.3f} ms per message (runs "
            f"{r['cost_ms_range'][0]:.3f} to {r['cost_ms_range'][1]:.3f}). The check alone, on "
            f"a {a['header_bytes']} byte Exchange Online header block: tenant proof "
            f"{a['tenant_proof_us']:.1f} us, admission {a['admit_m365_us']:.1f} us (network "
            f"source {a['admit_network_us']:.1f} us)")


if __name__ == "__main__":
    from run import SmtpSink

    sink = SmtpSink()
    try:
        print(report(measure(sink.port)))
    finally:
        sink.stop()
