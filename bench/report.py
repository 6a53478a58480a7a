"""The budgets of issue 7, judged on the figures, and the table (stdout, JSON, RESULTS.md)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
DISPATCH_FIRST = ", DISPATCH_AFTER_RESPONSE=0"


@dataclass
class Budget:
    name: str
    figure: str
    limit: str
    passed: bool | None  # None: not measured
    note: str = ""

    @property
    def verdict(self) -> str:
        return "n/a" if self.passed is None else ("PASS" if self.passed else "MISS")


def _get(results: dict[str, Any], path: str, default: Any = None) -> Any:
    node: Any = results
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def _num(value: Any) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _tput(fig: dict[str, Any]) -> str:
    a = fig["c16"]
    return f"{a['throughput_ratio']}x ({a['contender_rps']} vs {a['raw_rps']} req/s)"


def budgets(r: dict[str, Any]) -> list[Budget]:
    out: list[Budget] = []

    def add(name: str, figure: Any, limit: str, ok: bool | None, note: str = "") -> None:
        out.append(Budget(name, str(figure), limit, ok, note))

    # statements, counted by pg_stat_statements
    dash = {s: _get(r, f"statements.dashboard.{s}.contender.per_request") for s in "SML"}
    if all(v is not None for v in dash.values()):
        same = len(set(dash.values())) == 1
        add(
            "dashboard statements S/M/L",
            "/".join(f"{v:g}" for v in dash.values()),
            "identical, <= 5",
            same and dash["M"] <= 5,
        )
    else:
        add("dashboard statements S/M/L", "-", "identical, <= 5", None, "pg_stat_statements")
    for world in ("2k", "20k"):
        queue = {
            p: _get(r, f"statements.review_queue.{world}.{p}.contender.per_request")
            for p in (10, 50, 200)
        }
        if all(v is not None for v in queue.values()):
            add(
                f"review queue statements 10/50/200 ({world} dossiers)",
                "/".join(f"{v:g}" for v in queue.values()),
                "identical, <= 4",
                len(set(queue.values())) == 1 and queue[50] <= 4,
            )
    send = _get(r, "statements.send_message.contender", {})
    if send.get("per_request") is not None:
        add(
            "sendMessage statements (mutation, with BEGIN/COMMIT)",
            f"{send['mutation']:g}",
            "<= 6",
            send["mutation"] <= 6,
            f"then {send['dispatch']:g} in the after-commit outbox dispatch of the same request "
            f"(total {send['per_request']:g}; not in the issue's budget, see RESULTS.md)",
        )
    dup = _get(r, "statements.duplicate_webhook.contender.per_request")
    add("duplicate webhook statements", dup, "<= 2", dup is not None and dup <= 2)

    # throughput and latency against the raw routes
    m = _get(r, "dashboard.M.closed", {})
    if m:
        add(
            "dashboard M throughput vs raw (c=16)",
            _tput(m),
            ">= 0.5x",
            m["c16"]["throughput_ratio"] >= 0.5,
        )
        add(
            "dashboard M p50 vs raw (c=1)",
            f"{m['c1']['p50_ratio']}x ({m['c1']['contender_p50_ms']} vs "
            f"{m['c1']['raw_p50_ms']} ms)",
            "<= 2x",
            m["c1"]["p50_ratio"] <= 2,
        )
    q = _get(r, "review_queue.2k.50.closed", {})
    if q:
        add(
            "review queue throughput vs raw (page 50, c=16)",
            _tput(q),
            ">= 0.4x",
            q["c16"]["throughput_ratio"] >= 0.4,
        )
    # The budgets hold for the default (the dispatch after the answer); the tables show
    # the DISPATCH_AFTER_RESPONSE=0 server beside it for comparison.
    for key, label in (("send_message", ""),):
        s = _get(r, f"{key}.closed", {})
        if s:
            add(
                f"sendMessage p50 vs raw (c=1){label}",
                f"{s['c1']['p50_ratio']}x ({s['c1']['contender_p50_ms']} vs "
                f"{s['c1']['raw_p50_ms']} ms)",
                "<= 1.5x",
                s["c1"]["p50_ratio"] <= 1.5,
            )
        o = _get(r, f"{key}.open", {})
        if o:
            ratio = round(o["contender_p50_ms"] / o["raw_p50_ms"], 3) if o["raw_p50_ms"] else None
            add(
                f"sendMessage p50 vs raw (open loop, {o['rate_rps']} req/s){label}",
                f"{ratio}x ({o['contender_p50_ms']} vs {o['raw_p50_ms']} ms)",
                "<= 1.5x",
                ratio is not None and ratio <= 1.5,
            )
    for key, label in (("webhook", ""),):
        w = _get(r, f"{key}.distinct", {})
        if w:
            p99 = w["contender"]["p99_ms"]
            add(
                f"webhook p99 (200 distinct, c=4){label}",
                f"{p99} ms, {w['p99_ratio']}x raw ({w['raw']['p99_ms']} ms)",
                "<= 2x raw and <= 50 ms",
                w["p99_ratio"] <= 2 and p99 <= 50,
            )
    for side in ("contender",):
        d = _get(r, f"webhook.duplicates.{side}", {})
        if d:
            outcomes = d["outcomes"]
            add(
                "webhook: 50 events x5 at once, each handled once",
                f"{outcomes}",
                "50 processed, 200 duplicate",
                outcomes.get("processed") == 50
                and outcomes.get("duplicate") == 200
                and d["each_order_paid_once"],
            )

    # live updates
    p = _get(r, "pubsub.100", {})
    if p:
        c, raw = p["contender"], p["raw"]
        add(
            "publish->subscriber p50 at 100 subscribers",
            f"{c['p50_ms']} ms (raw {raw['p50_ms']} ms)",
            "<= raw + 2 ms",
            c["p50_ms"] <= raw["p50_ms"] + 2,
        )
        add(
            "publish->subscriber p99 at 100 subscribers",
            f"{c['p99_ms']} ms",
            "<= 10 ms",
            c["p99_ms"] <= 10,
        )
        lost = sum(_get(r, f"pubsub.{n}.contender.lost", 0) for n in (1, 100, 500))
        add("publish->subscriber loss (1/100/500)", lost, "0", lost == 0)
    lf = _get(r, "login_flood", {})
    if lf:
        idle, flood = lf["idle"], lf["flood"]
        add(
            f"a client's `me` during a flood of {lf['attackers']} anonymous logins (p50)",
            f"{lf['p50_ratio']}x ({idle['p50_ms']} -> {flood['p50_ms']} ms)",
            "<= 3x idle",
            lf["p50_ratio"] <= 3,
            f"{lf['logins_per_s']} logins/s for unknown e-mails",
        )
        add(
            "the same, p99",
            f"{lf['p99_ratio']}x ({idle['p99_ms']} -> {flood['p99_ms']} ms)",
            "<= 10x idle",
            lf["p99_ratio"] <= 10,
        )
    f = _get(r, "fanout", {})
    if f:
        add(
            "fan-out to 1,000 subscribers vs bare WebSocket",
            f"{f['ratio']}x ({f['contender_deliveries_per_s']} vs {f['bare_deliveries_per_s']}/s)",
            ">= 0.5x",
            f["ratio"] >= 0.5,
        )
    rr = _get(r, "redis_restart", {})
    if rr and rr.get("max_s") is not None:
        add(
            "deliveries resume after a Redis restart",
            f"{rr['max_s']} s (median {rr['median_s']} s)",
            "<= 1 s",
            rr["max_s"] <= 1 and rr["resumed"] == rr["subscribers"],
        )
    so = _get(r, "soak", {})
    if so:
        add(
            f"soak RSS growth after warm-up ({so['seconds']:.0f} s)",
            f"{so['rss_growth_pct']} % ({so['rss_after_warmup_mb']} -> {so['rss_end_mb']} MB)",
            "<= 3 %",
            so["rss_growth_pct"] is not None and so["rss_growth_pct"] <= 3,
        )
        add(
            "one stalled reader: the others' p99",
            f"{so['p99_ratio']}x ({so['p99_control_ms']} -> {so['p99_with_stalled_ms']} ms)",
            "<= 1.2x",
            so["p99_ratio"] is not None and so["p99_ratio"] <= 1.2,
        )
        add(
            "Redis pub/sub connections per server process",
            so["pubsub_connections"],
            "exactly 1",
            so["pubsub_connections"] == 1,
        )
    checks = [
        (path, _get(r, path))
        for path in (
            "dashboard.S.check",
            "dashboard.M.check",
            "dashboard.L.check",
            "review_queue.2k.10.check",
            "review_queue.2k.50.check",
            "review_queue.2k.200.check",
            "review_queue.20k.50.check",
            "send_message.check",
            "webhook.check",
        )
    ]
    failed = [p for p, v in checks if v and not v.get("equal")]
    add(
        "contender and baseline return the same data",
        "all equal" if not failed else f"differ: {', '.join(failed)}",
        "equal",
        not failed,
    )
    return out


def _row(*cells: Any) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def tables(r: dict[str, Any]) -> str:
    lines: list[str] = []
    machine = r.get("machine", {})
    lines += ["**Machine**: " + ", ".join(f"{k} {v}" for k, v in machine.items()), ""]
    cfg = r.get("config", {})
    lines += ["**Run**: " + ", ".join(f"{k} {v}" for k, v in cfg.items()), ""]

    lines += ["### Statements per request (pg_stat_statements)", ""]
    lines += [_row("request", "API", "raw"), _row("---", "---:", "---:")]
    for size in "SML":
        st = _get(r, f"statements.dashboard.{size}", {})
        if st:
            lines.append(
                _row(f"dashboard {size}", st["contender"]["per_request"], st["raw"]["per_request"])
            )
    for world in ("2k", "20k"):
        for page in (10, 50, 200):
            st = _get(r, f"statements.review_queue.{world}.{page}", {})
            if st:
                lines.append(
                    _row(
                        f"review queue first={page} ({world} dossiers)",
                        st["contender"]["per_request"],
                        st["raw"]["per_request"],
                    )
                )
    send = _get(r, "statements.send_message", {})
    if send:
        c = send["contender"]
        lines.append(
            _row(
                "sendMessage: mutation + after-commit dispatch = total",
                f"{c.get('mutation')} + {c.get('dispatch')} = {c.get('per_request')}",
                send["raw"]["per_request"],
            )
        )
    dup = _get(r, "statements.duplicate_webhook", {})
    if dup:
        lines.append(
            _row("webhook, a duplicate", dup["contender"]["per_request"], dup["raw"]["per_request"])
        )
    lines.append("")

    lines += ["### Requests: API vs raw route (median of interleaved rounds)", ""]
    lines += [
        _row(
            "scenario",
            "c=16 API req/s",
            "c=16 raw req/s",
            "ratio",
            "c=1 p50 API",
            "c=1 p50 raw",
            "ratio",
            "c=1 p99 API",
            "c=1 p99 raw",
            "same data",
        ),
        _row(*(["---"] + ["---:"] * 9)),
    ]

    def http_row(label: str, path: str) -> None:
        fig = _get(r, f"{path}.closed")
        if not fig:
            return
        check = _get(r, f"{path}.check", {})
        a, b = fig["c16"], fig["c1"]
        lines.append(
            _row(
                label,
                a["contender_rps"],
                a["raw_rps"],
                f"{a['throughput_ratio']}x",
                f"{b['contender_p50_ms']} ms",
                f"{b['raw_p50_ms']} ms",
                f"{b['p50_ratio']}x",
                f"{b['contender_p99_ms']} ms",
                f"{b['raw_p99_ms']} ms",
                "yes" if check.get("equal") else f"NO: {check.get('difference')}",
            )
        )

    for size in "SML":
        http_row(f"dashboard {size}", f"dashboard.{size}")
    for world in ("2k", "20k"):
        for page in (10, 50, 200):
            http_row(f"review queue first={page} ({world})", f"review_queue.{world}.{page}")
    http_row("sendMessage", "send_message")
    http_row("sendMessage" + DISPATCH_FIRST, "send_message_dispatch_first")
    lines.append("")
    for label, path in (
        ("dashboard M", "dashboard.M.open"),
        ("sendMessage", "send_message.open"),
        ("sendMessage" + DISPATCH_FIRST, "send_message_dispatch_first.open"),
    ):
        ol = _get(r, path)
        if ol:
            lines += [
                f"Open loop, {label} at {ol['rate_rps']} req/s (half the API's c=16 "
                f"throughput): API p50 {ol['contender_p50_ms']} ms / p99 "
                f"{ol['contender_p99_ms']} ms, raw p50 {ol['raw_p50_ms']} ms / p99 "
                f"{ol['raw_p99_ms']} ms.",
                "",
            ]
    w = _get(r, "webhook")
    if w:
        d = w["distinct"]
        lines += [
            "### Stripe webhook",
            "",
            _row("", "API", "raw"),
            _row("---", "---:", "---:"),
            _row(
                "200 distinct events at c=4, p50",
                f"{d['contender']['p50_ms']} ms",
                f"{d['raw']['p50_ms']} ms",
            ),
            _row(
                "200 distinct events at c=4, p99",
                f"{d['contender']['p99_ms']} ms",
                f"{d['raw']['p99_ms']} ms",
            ),
        ]
        dd = _get(r, "webhook_dispatch_first.distinct")
        if dd:
            lines += [
                _row(
                    "same" + DISPATCH_FIRST + ", p50",
                    f"{dd['contender']['p50_ms']} ms",
                    f"{dd['raw']['p50_ms']} ms",
                ),
                _row(
                    "same" + DISPATCH_FIRST + ", p99",
                    f"{dd['contender']['p99_ms']} ms",
                    f"{dd['raw']['p99_ms']} ms",
                ),
            ]
        dc, dr = _get(r, "webhook.duplicates.contender", {}), _get(r, "webhook.duplicates.raw", {})
        if dc and dr:
            lines.append(_row("50 events x5 at once: outcomes", dc["outcomes"], dr["outcomes"]))
            lines.append(
                _row("50 events x5 at once: p99", f"{dc['p99_ms']} ms", f"{dr['p99_ms']} ms")
            )
            lines.append(
                _row("each order paid once", dc["each_order_paid_once"], dr["each_order_paid_once"])
            )
        lines.append("")
    if _get(r, "pubsub"):
        lines += [
            "### Live updates",
            "",
            _row("subscribers", "API p50", "API p99", "raw Redis p50", "raw Redis p99", "API lost"),
            _row("---:", "---:", "---:", "---:", "---:", "---:"),
        ]
        for n, fig in sorted(_get(r, "pubsub").items(), key=lambda kv: int(kv[0])):
            a, b = fig["contender"], fig["raw"]
            lines.append(
                _row(
                    n,
                    f"{a['p50_ms']} ms",
                    f"{a['p99_ms']} ms",
                    f"{b['p50_ms']} ms",
                    f"{b['p99_ms']} ms",
                    a["lost"],
                )
            )
        lines.append("")
    f = _get(r, "fanout")
    if f:
        lines += [
            f"Fan-out: {f['subscribers']} subscribers, bursts of {f['messages_per_burst']}: API "
            f"{f['contender_deliveries_per_s']} deliveries/s, bare WebSocket "
            f"{f['bare_deliveries_per_s']}/s ({f['ratio']}x), lost {f['lost']}.",
            "",
        ]
    rr = _get(r, "redis_restart")
    if rr:
        lines += [f"Redis restart: {rr}", ""]
    so = _get(r, "soak")
    if so:
        lines += [
            f"Soak {so['seconds']:.0f} s: {so['idle_sockets']} idle subscriptions, "
            f"{so['active_subscribers']} active, 20 updates/s, 10 dashboard req/s; RSS "
            f"{so['rss_after_warmup_mb']} -> {so['rss_end_mb']} MB ({so['rss_growth_pct']} %); "
            f"active p99 {so['p99_control_ms']} ms -> {so['p99_with_stalled_ms']} ms with a "
            f"stalled reader ({so['p99_ratio']}x; the stalled one dropped: "
            f"{so['stalled_reader_dropped']}); Redis pub/sub connections of the server "
            f"process: {so['pubsub_connections']}.",
            "",
        ]
    lines += [
        "### Budgets",
        "",
        _row("budget", "measured", "limit", "verdict", "note"),
        _row("---", "---", "---", "---", "---"),
    ]
    for b in budgets(r):
        lines.append(_row(b.name, b.figure, b.limit, b.verdict, b.note))
    lines.append("")
    return "\n".join(lines)


def write_markdown(path: Path, r: dict[str, Any]) -> None:
    """Replace the generated part of RESULTS.md (between the markers), keep the rest."""
    generated = (
        f"{BEGIN}\n\n_Generated by `make bench` on {r.get('finished', '?')}._\n\n{tables(r)}\n{END}"
    )
    text = path.read_text() if path.exists() else f"# Benchmark results\n\n{BEGIN}\n{END}\n"
    if BEGIN in text and END in text:
        text = re.sub(
            re.escape(BEGIN) + ".*?" + re.escape(END), lambda _m: generated, text, flags=re.S
        )
    else:
        text += "\n" + generated + "\n"
    path.write_text(text)
