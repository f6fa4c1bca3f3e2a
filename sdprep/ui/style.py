"""The page's look: the theme and the few styles the sections need."""

from __future__ import annotations

import gradio as gr

THEME = gr.themes.Soft(
    primary_hue="indigo",
    neutral_hue="slate",
    font=("ui-sans-serif", "system-ui", "Segoe UI", "Roboto", "sans-serif"),
    font_mono=("ui-monospace", "SFMono-Regular", "Consolas", "monospace"),
)
CSS = """
.sdprep-heading h3 { margin: 0 0 .25rem 0; }
.sdprep-hint { color: var(--body-text-color-subdued); font-size: .9em; }
.sdprep-hint p { margin: .1rem 0; }
.sdprep-problems { list-style: none; margin: .2rem 0 0 0; padding: 0; }
.sdprep-problems li { margin: .2rem 0; padding: .3rem .55rem; border-radius: 6px; font-size: .9em; }
.sdprep-problems li.sdprep-error { color: #991b1b; background: #fee2e2; border-left: 4px solid #dc2626; }
.sdprep-problems li.sdprep-warning { color: #92400e; background: #fef3c7; border-left: 4px solid #d97706; }
.dark .sdprep-problems li.sdprep-error { color: #fecaca; background: #450a0a; }
.dark .sdprep-problems li.sdprep-warning { color: #fde68a; background: #451a03; }
.sdprep-severity { font-weight: 600; text-transform: uppercase; font-size: .75em; margin-right: .3rem; }
.sdprep-slot { padding: .4rem; }
.sdprep-muted { color: var(--body-text-color-subdued); }
#build-log textarea { font-family: var(--font-mono); font-size: 12.5px; line-height: 1.35; }
#library .sdprep-model { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: .5rem .8rem;
  margin: 0 0 .8rem 0; }
#library h4 { margin: .2rem 0; }
#library table { width: 100%; border-collapse: collapse; font-size: .9em; }
#library th, #library td { text-align: left; padding: .25rem .4rem; vertical-align: top;
  border-bottom: 1px solid var(--border-color-primary); }
#library li.sdprep-error { color: #b91c1c; }
.sdprep-badge { font-size: .7em; font-weight: 600; padding: .1rem .45rem; border-radius: 999px;
  background: var(--color-accent-soft); color: var(--body-text-color); vertical-align: middle; }
#language { max-width: 260px; margin-left: auto; }
#derived table { width: 100%; table-layout: auto; }
#derived td:first-child, #derived th:first-child { white-space: nowrap; width: 1%; }
#derived code { word-break: break-all; white-space: normal; }
#build-result code { word-break: break-all; }
.sdprep-banner { border: 1px solid #d97706; background: #fef3c7; color: #78350f; border-radius: 8px;
  padding: .4rem .9rem; }
.dark .sdprep-banner { background: #451a03; color: #fde68a; }
/* Gradio puts a Markdown's classes on its block and on the text inside: one box, not two. */
.sdprep-banner .sdprep-banner { border: none; background: none; padding: 0; }
/* Narrow windows: the preview column comes after the whole form, so the summary line stays in view at the bottom of
   the window (each section's problems are under the section itself); focus scrolling keeps fields clear of it. */
@media (max-width: 800px) {
  #summary { position: fixed; left: 0; right: 0; bottom: 0; z-index: 50; margin: 0; padding: .45rem 1rem;
    background: var(--background-fill-primary); border-top: 2px solid var(--color-accent);
    box-shadow: 0 -2px 10px rgba(0, 0, 0, .15); }
  html { scroll-padding-bottom: 4.5rem; }
  .gradio-container { padding-bottom: 4.5rem !important; }
}
"""
