"""The engines library on the page: one card per prepared model, a row per build, every value escaped."""

from __future__ import annotations

from pathlib import Path

from sdprep.disk import DiskUse
from sdprep.engines import PreparedModel, Variant, disk_message
from sdprep.messages import Message, Size
from sdprep.text import enum_message, t, word
from sdprep.ui.views.html import Markup, join, render
from sdprep.ui.views.jobs import CHILD_ERRORS

_CARD = '<div class="sdprep-model"><h4>$slug <span class="sdprep-badge">$state</span></h4>$body</div>'
_MODEL_LINE = "<p>$model_label: <code>$model</code> · $config_label: <code>$config</code>$size</p>"
_ROW = (
    "<tr><td><code>$name</code>$latest</td><td>$status$check</td><td>$profile</td>"
    "<td><details><summary>$count · $size</summary><ul>$engines</ul></details></td>"
    "<td>$built</td><td>$machine</td></tr>"
)
_HEADS = ("d_variant", "lib_status", "d_profile", "lib_engines", "lib_built", "lib_on")


def variant_status(variant: Variant, lang: str) -> str:
    return t(f"status_{variant.status}", lang)


def _row(variant: Variant, latest: bool, lang: str) -> Markup:
    engines = [
        render(
            "<li><code>$path</code> $size</li>",
            path=engine["path"],
            size=t("size_only", lang, size=Size(engine["size"])),
        )
        for engine in variant.engines
    ]
    engines += [render("<li class='sdprep-error'><code>$path</code></li>", path=path) for path in variant.missing]
    summary = variant.check_summary
    return render(
        _ROW,
        name=variant.name,
        latest=render(' <span class="sdprep-badge">$text</span>', text=t("lib_latest", lang)) if latest else Markup(""),
        status=variant_status(variant, lang),
        check=_check_summary(summary, lang) if summary else Markup(""),
        profile=word(enum_message("profile_", variant.profile), lang) if variant.profile else "—",
        count=len(variant.engines),
        size=t("size_only", lang, size=Size(variant.size)),
        engines=join(engines),
        built=_built(variant, lang),
        machine=f"{variant.gpu or t('unknown', lang)} / {variant.tensorrt or t('unknown', lang)}",
    )


def _built(variant: Variant, lang: str) -> Markup:
    """When it was built, and for an imported build from which machine's pack and when it came."""
    if variant.imported is None:
        return render("$at", at=variant.built_at)
    came = t("lib_imported_from", lang, machine=variant.imported.machine, at=variant.imported.imported_at)
    return render("$at<br><small>$came</small>", at=variant.built_at, came=came)


def _check_summary(summary: Message, lang: str) -> Markup:
    """The last check in one line; a failure in the build Python's own words as code."""
    reason = summary.params.get("reason")
    if summary.code == "check_summary_failed" and isinstance(reason, Message) and reason.code in CHILD_ERRORS:
        raw = f"{reason.params.get('type') or 'Error'}: {reason.params.get('detail') or ''}"
        outcome = word(summary.params.get("outcome") or "", lang)
        return render("<br><small>$outcome: <code>$raw</code></small>", outcome=outcome, raw=raw)
    return render("<br><small>$text</small>", text=word(summary, lang))


def _card(model: PreparedModel, lang: str) -> Markup:
    if model.outside:
        state = t("status_outside", lang)
    elif model.unreadable:
        state = t("status_unreadable", lang, reason=model.unreadable)
    else:
        state = variant_status(model.latest, lang) if model.latest else t("lib_no_build", lang)
    parts = [
        render(
            _MODEL_LINE,
            model_label=t("lib_model", lang),
            model=model.model,
            config_label=t("lib_config", lang),
            config=str(model.config) if model.config else "—",
            size=f" · {t('lib_model_size', lang, size=Size(model.size))}" if model.size is not None else "",
        )
    ]
    if model.variants:
        heads = join([render("<th>$text</th>", text=t(key, lang)) for key in _HEADS])
        rows = join([_row(variant, variant is model.latest, lang) for variant in model.variants])
        parts.append(
            render("<table><thead><tr>$heads</tr></thead><tbody>$rows</tbody></table>", heads=heads, rows=rows)
        )
    notes = []
    if model.config_outside:
        notes.append(t("lib_config_outside", lang))
    if model.skipped:
        notes.append(t("lib_skipped", lang, reasons=model.skipped_summary))
    parts += [render('<p class="sdprep-error">$text</p>', text=note) for note in notes]
    if model.loose_engines:
        parts.append(render('<p class="sdprep-muted">$text</p>', text=t("lib_loose", lang, count=model.loose_engines)))
    return render(_CARD, slug=model.slug, state=state, body=join(parts))


def library_html(models: list[PreparedModel], folder: Path, lang: str, disk: DiskUse | None = None) -> str:
    if not models:
        return render("<p>$text</p>", text=t("lib_empty_plain", lang, folder=folder))
    said = word(disk_message(folder, disk), lang) if disk is not None else t("lib_folder_plain", lang, folder=folder)
    header = render('<p class="sdprep-muted" id="library-disk">$text</p>', text=said)
    return join([header, *[_card(model, lang) for model in models]])
