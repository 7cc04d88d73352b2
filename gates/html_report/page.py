"""The report page: plain string building, every outside text escaped, styles and script inline.

Everything a model or a gateway wrote is hostile: it goes through `esc` (secrets abbreviated,
then html.escape), and the page's Content-Security-Policy lets only its own script run, so an
escaping slip still could not execute anything.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from typing import Any

from deploy.ledger import GateRecord
from deploy.litellm_admin import redact_text
from gates.html_report.items import Item, Section
from gates.html_report.spend import Spend

MAX_TEXT = 20_000  # characters of one text shown; the details file has all of it
OPEN_LINES = 25  # a section longer than this starts collapsed


def esc(value: Any) -> str:
    return html.escape(redact_text(str(value)), quote=True)


def _clip(text: str) -> str:
    if len(text) <= MAX_TEXT:
        return text
    return text[:MAX_TEXT] + f"\n... ({len(text) - MAX_TEXT} more characters in the details file)"


def _money(value: float | None) -> str:
    return "" if value is None else f"{value:.6f} USD"


def badge(status: str, word: str | None = None) -> str:
    return f'<span class="badge st-{esc(status)}">{esc((word or status).upper())}</span>'


# ---- pieces --------------------------------------------------------------------------------

def overview_row(record: GateRecord, anchor: str) -> str:
    served = record.target.model + (" (stand-in)" if record.target.stand_in else "")
    figure = "" if record.value is None else f"{record.metric} {record.value:.3g}"
    if record.threshold is not None:
        figure += f" (gate {record.threshold:.3g})"
    return (
        f'<tr class="v-{esc(record.verdict)}"><td><a href="#{anchor}">{esc(record.alias)}</a></td>'
        f"<td>{esc(record.gate)}</td><td>{badge(record.verdict)}</td>"
        f'<td>{esc(record.summary)}<div class="sub">{esc(figure)}</div></td>'
        f'<td>{esc(served)}<div class="sub">{esc(record.target.served_model_name)}</div></td>'
        f'<td class="reason">{esc(record.reason)}</td></tr>'
    )


def overview_missing(alias: str | None, test: str, verdict: str, message: str, anchor: str) -> str:
    return (
        f'<tr class="v-{esc(verdict)}"><td><a href="#{anchor}">{esc(alias or "")}</a></td>'
        f"<td>{esc(test.split('::')[-1])}</td><td>{badge(verdict)}</td>"
        f'<td>no verdict recorded</td><td></td><td class="reason">{esc(message)}</td></tr>'
    )


def spend_block(spend: Spend | None) -> str:
    if spend is None:
        return ""
    parts = [f"<strong>{esc(spend.source)}</strong>: spent {esc(_money(spend.spent_usd))}"]
    meter = ""
    if spend.budget_usd:
        share = spend.share or 0.0
        parts.append(f"of a {esc(_money(spend.budget_usd))} budget ({share:.2%})")
        meter = (f'<meter min="0" max="{spend.budget_usd:g}" high="{0.8 * spend.budget_usd:g}" '
                 f'value="{min(spend.spent_usd, spend.budget_usd):g}"></meter>')
    if spend.gate_cost_usd is not None:
        parts[-1] += ";"
        parts.append(f"this gate's requests {esc(_money(spend.gate_cost_usd))}")
    note = f'<div class="sub">{esc(spend.note)}</div>' if spend.note else ""
    return f'<div class="spend">Key spend: {" ".join(parts)} {meter}{note}</div>'


def plots_block(plots: list[tuple[str, str]]) -> str:
    if not plots:
        return ""
    figures = "".join(f'<figure class="plot" data-metric="{esc(title)}">{svg}</figure>'
                      for title, svg in plots)  # matplotlib's own SVG: not model text
    return f'<div class="plots">{figures}</div>'


def _section(section: Section) -> str:
    text = _clip(section.text)
    lines = text.count("\n") + 1
    opened = " open" if lines <= OPEN_LINES else ""
    body = f"<pre>{esc(text)}</pre>" if section.code else f"<p>{esc(text)}</p>"
    return (f'<details class="section"{opened}><summary>{esc(section.label)} '
            f'<span class="sub">({lines} line{"s" if lines != 1 else ""})</span></summary>{body}</details>')


def _value(value: Any) -> str:
    if isinstance(value, dict | list):
        text = json.dumps(value, indent=2, ensure_ascii=False)
        return f"<pre>{esc(_clip(text))}</pre>" if "\n" in text else esc(text)
    text = str(value)
    return f"<pre>{esc(_clip(text))}</pre>" if "\n" in text or len(text) > 200 else esc(text)


def fields_table(fields: dict[str, Any]) -> str:
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{_value(v)}</td></tr>"
                   for k, v in fields.items() if v is not None and v != "")
    return f'<table class="kv">{rows}</table>' if rows else ""


def item_block(item: Item, opened: bool) -> str:
    tokens = ""
    if item.prompt_tokens is not None or item.completion_tokens is not None:
        tokens = f"{item.prompt_tokens or 0} → {item.completion_tokens or 0} tokens"
    meta = " · ".join(x for x in (tokens, _money(item.cost_usd)) if x)
    short = item.reason if len(item.reason) <= 160 else item.reason[:157] + "..."
    reason = (f'<div class="why"><strong>Reason:</strong> <span class="reason-text">'
              f"{esc(_clip(item.reason))}</span></div>") if item.reason else ""
    return (
        f'<details class="item" data-status="{esc(item.status)}"{" open" if opened else ""}>'
        f"<summary>{badge(item.status, item.status_word)} <span class=\"title\">{esc(item.title)}</span>"
        f' <span class="meta">{esc(meta)}</span> <span class="short">{esc(short)}</span></summary>'
        f'<div class="body">{reason}{"".join(_section(s) for s in item.sections)}'
        f"{fields_table(item.fields)}</div></details>"
    )


def items_block(items: list[Item], note: str) -> str:
    counts: dict[str, int] = {}
    for item in items:
        counts[item.status] = counts.get(item.status, 0) + 1
    tally = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    head = f'<h3>Items <span class="sub">({len(items)}: {esc(tally)}; failed first)</span></h3>'
    warn = f'<p class="note">{esc(note)}</p>' if note else ""
    first_bad = next((i for i, item in enumerate(items) if item.status != "pass"), None)
    body = "".join(item_block(item, i == first_bad) for i, item in enumerate(items))
    if not items:
        return head + warn + "<p>No items.</p>"
    # A list with nothing failed starts folded (40 latency requests that all answered, say).
    opened = " open" if first_bad is not None else ""
    return (head + warn + f'<details class="items"{opened}><summary>show the {len(items)} items'
            f'</summary>{body}</details>')


# ---- the page ------------------------------------------------------------------------------

STYLE = """
:root{--pass:#1a7f37;--fail:#cf222e;--error:#9a6700;--inconclusive:#8250df;--other:#57606a;--line:#d0d7de}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1f2328;background:#f6f8fa}
main{max-width:1200px;margin:0 auto;padding:16px 24px 48px}
h1{font-size:22px;margin:8px 0}h2{font-size:18px;margin:0 0 6px}h3{font-size:15px;margin:14px 0 6px}
.sub{color:#57606a;font-size:12px}.note{color:var(--error)}
.run{display:flex;gap:16px;align-items:center;flex-wrap:wrap}
.big{font-size:20px;font-weight:700;padding:4px 12px;border-radius:6px;color:#fff}
.big.passed{background:var(--pass)}.big.failed{background:var(--fail)}.big.inconclusive{background:var(--inconclusive)}
table{border-collapse:collapse;background:#fff;width:100%}
th,td{border:1px solid var(--line);padding:5px 8px;text-align:left;vertical-align:top}
th{background:#eaeef2;font-weight:600}
table.kv{width:auto;margin-top:6px}table.kv th{background:#f6f8fa;font-weight:500;white-space:nowrap}
td.reason{max-width:420px;font-size:12px}
.badge{display:inline-block;min-width:48px;text-align:center;font-size:11px;font-weight:700;
 padding:1px 6px;border-radius:10px;color:#fff;background:var(--other)}
.st-pass{background:var(--pass)}.st-fail{background:var(--fail)}.st-error{background:var(--error)}
.st-inconclusive{background:var(--inconclusive)}
section.gate{background:#fff;border:1px solid var(--line);border-radius:8px;padding:14px 16px;margin:18px 0}
section.gate.v-fail{border-left:6px solid var(--fail)}section.gate.v-pass{border-left:6px solid var(--pass)}
section.gate.v-error{border-left:6px solid var(--error)}
section.gate.v-inconclusive{border-left:6px solid var(--inconclusive)}
.plots{display:flex;flex-wrap:wrap;gap:8px}.plot{margin:0;border:1px solid var(--line);border-radius:6px}
.plot svg{display:block;max-width:100%;height:auto}
.spend{margin:8px 0}meter{width:220px;vertical-align:middle}
details.item{border:1px solid var(--line);border-radius:6px;margin:4px 0;background:#fff}
details.item[data-status=fail],details.item[data-status=error]{background:#fff8f8}
details.item>summary{cursor:pointer;padding:5px 8px}
details.item .title{font-weight:600;font-family:ui-monospace,monospace}
details.item .short{color:#57606a;font-size:12px}details.item .meta{color:#57606a;font-size:12px;margin-right:8px}
details.item .body{padding:4px 12px 10px}
details.items>summary{cursor:pointer;color:#0969da}
details.section>summary{cursor:pointer;font-weight:600;margin-top:6px}
pre{background:#f6f8fa;border:1px solid var(--line);border-radius:4px;padding:6px 8px;margin:4px 0;
 max-height:420px;overflow:auto;white-space:pre-wrap;word-break:break-word;font:12px/1.4 ui-monospace,monospace}
#filter{position:sticky;top:0;z-index:2;background:#fff;border-bottom:1px solid var(--line);
 padding:8px 24px;display:flex;gap:16px;align-items:center}
#filter input[type=search]{width:320px;padding:4px 8px}
"""

# The filter: a text box and a "failed only" toggle over every item; `#failed` and `#q=text`
# in the address preset them. Without script the bar stays hidden and every item is listed.
SCRIPT = """
(function () {
  var bar = document.getElementById('filter');
  var q = document.getElementById('q'), only = document.getElementById('failed-only');
  var shown = document.getElementById('shown');
  var items = Array.prototype.slice.call(document.querySelectorAll('details.item'));
  var lists = Array.prototype.slice.call(document.querySelectorAll('details.items'));
  function apply() {
    var text = q.value.toLowerCase(), n = 0;
    // a search opens the folded lists, so that what it finds is seen
    if (text) { lists.forEach(function (list) { list.open = true; }); }
    items.forEach(function (item) {
      var keep = (!only.checked || item.dataset.status !== 'pass') &&
                 (!text || item.textContent.toLowerCase().indexOf(text) >= 0);
      item.hidden = !keep;
      if (keep) { n += 1; }
    });
    shown.textContent = n + ' of ' + items.length + ' items shown';
  }
  decodeURIComponent(location.hash.slice(1)).split('&').forEach(function (part) {
    if (part === 'failed') { only.checked = true; }
    else if (part.indexOf('q=') === 0) { q.value = part.slice(2); }
  });
  q.addEventListener('input', apply);
  only.addEventListener('change', apply);
  bar.hidden = false;
  document.body.setAttribute('data-js', 'on');
  apply();
})();
"""

FILTER_BAR = (
    '<div id="filter" hidden><input id="q" type="search" placeholder="filter items: task, text, reason..."'
    ' aria-label="filter items"><label><input id="failed-only" type="checkbox"> failed only</label>'
    '<span id="shown" class="sub"></span></div>'
)


def page(title: str, body: str) -> str:
    digest = base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()
    policy = f"default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{digest}'"
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{policy}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{STYLE}</style></head>"
        f"<body>{FILTER_BAR}<main>{body}</main><script>{SCRIPT}</script></body></html>\n"
    )
