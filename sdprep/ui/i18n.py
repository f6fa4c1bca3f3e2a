"""The page's language: Gradio's own i18n for every label, and the same language for the text the server composes.

The text table (sdprep.text.TABLE, shaped as gr.I18n takes it) goes to `launch(i18n=I18N)`; components get their
labels as `label(key)`, and Gradio translates them in the browser from its locale: the browser's language, or the
one the Settings panel or this page's switch chose (Gradio's own changeLocale, the function its Settings panel
calls). The page's <html lang> follows that locale; a small script reports it into a hidden field, and every
handler words what it composes (problems, results, the environment, the library) in that language. Labels are never
relabelled by the server.
"""

from __future__ import annotations

import gradio as gr
from gradio.i18n import I18nData

from sdprep.launcher import app_command
from sdprep.text import LANGUAGES, TABLE

KEY_PREFIX = "sdprep_"  # keeps our keys apart from Gradio's own translation keys in the browser
LANGUAGE_CHOICES: list[tuple[str, str]] = [("English", "en"), ("Русский", "ru")]
STORAGE_KEY = "sdprep-lang"

# A static label that names a command names the one that runs on this machine (`{app}`: sdprep/launcher.py).
_APP = app_command()
# Gradio's own words that its status line reads out to screen readers: with an I18n of the app's, the page otherwise
# announces the raw key ("common.complete").
GRADIO_KEYS = {"common.complete": "sr_complete", "common.error": "sr_error", "common.loading": "sr_loading"}
I18N = gr.I18n(
    **{
        lang: {
            **{KEY_PREFIX + key: text.replace("{app}", _APP) for key, text in TABLE[lang].items()},
            **{gradio_key: TABLE[lang][key] for gradio_key, key in GRADIO_KEYS.items()},
        }
        for lang in LANGUAGES
    }
)

# Runs once Gradio has started (Gradio adds `head` to the page then). It gives the switch Gradio's own changeLocale,
# applies a stored or ?lang= choice, and reports every change of <html lang> to the hidden #page-lang field.
HEAD = f"""<script>
(() => {{
  const KEY = '{STORAGE_KEY}', LANGS = {list(LANGUAGES)!r};
  async function gradioCore() {{
    const url = performance.getEntriesByType('resource').map((e) => e.name)
      .find((name) => /\\/assets\\/core-[^/]+\\.js$/.test(name));
    return url ? import(url) : null;
  }}
  window.sdprepSetLanguage = async (lang) => {{
    if (!LANGS.includes(lang)) return;
    localStorage.setItem(KEY, lang);
    const core = await gradioCore();
    if (core && core.changeLocale) core.changeLocale(lang);
  }};
  const report = () => {{
    const box = document.querySelector('#page-lang textarea, #page-lang input');
    const lang = (document.documentElement.lang || 'en').slice(0, 2);
    if (box && box.value !== lang) {{
      box.value = lang;
      box.dispatchEvent(new Event('input', {{bubbles: true}}));
    }}
  }};
  new MutationObserver(report).observe(document.documentElement, {{attributes: true, attributeFilter: ['lang']}});
  const wanted = new URLSearchParams(location.search).get('lang') || localStorage.getItem(KEY);
  if (wanted && wanted !== (document.documentElement.lang || '').slice(0, 2)) window.sdprepSetLanguage(wanted);
  setTimeout(report, 500);
}})();
</script>"""

# The language the page shows, reported to the server on load.
DETECT_JS = "() => (document.documentElement.lang || navigator.language || 'en')"
# The switch: Gradio's own locale change (the labels), which the script above reports on (the server's text).
SWITCH_JS = "(lang) => { window.sdprepSetLanguage && window.sdprepSetLanguage(lang); return lang; }"


def label(key: str) -> I18nData:
    """A translatable label: the browser shows it in the page's language."""
    if key not in TABLE["en"]:  # fail at start-up, not in the browser
        raise KeyError(f"{key!r} is not in the text table")
    return I18N(KEY_PREFIX + key)
