"""The page's look: the theme and the few styles the sections need."""

from __future__ import annotations

import gradio as gr

THEME = gr.themes.Soft(
    primary_hue="indigo",
    neutral_hue="slate",
    font=("ui-sans-serif", "system-ui", "Segoe UI", "Roboto", "sans-serif"),
    font_mono=("ui-monospace", "SFMono-Regular", "Consolas", "monospace"),
)
CSS = r"""
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
#build-progress .sdprep-trt { margin: .4rem 0 0 0; font-size: .9em; }
#build-progress .sdprep-trt-row { display: flex; align-items: center; gap: .6rem; margin: .15rem 0; }
#build-progress .sdprep-trt-row span { flex: 0 1 22rem; overflow: hidden; text-overflow: ellipsis;
  white-space: nowrap; }
#build-progress .sdprep-trt-row progress { flex: 1 1 auto; height: .8rem; accent-color: var(--color-accent); }
#build-progress .sdprep-trt-deeper { color: var(--body-text-color-subdued); }
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
#derived td:first-child { width: 40%; }
.sdprep-banner { border: 1px solid #d97706; background: #fef3c7; color: #78350f; border-radius: 8px;
  padding: .4rem .9rem; }
.dark .sdprep-banner { background: #451a03; color: #fde68a; }
/* Gradio puts a Markdown's classes on its block and on the text inside: one box, not two. */
.sdprep-banner .sdprep-banner { border: none; background: none; padding: 0; }
/* The action bar: last in the Prepare tab and sticky, so it is in view at the bottom of the window on every width and,
   at the end of the page, sits in its own place below the content. Focus scrolling keeps fields clear of it. */
#action-bar { position: sticky; bottom: 0; z-index: 50; margin: .5rem 0 0 0; padding: .45rem .8rem;
  background: var(--background-fill-primary); border-top: 2px solid var(--color-accent);
  box-shadow: 0 -2px 10px rgba(0, 0, 0, .12); flex-wrap: wrap; align-items: center; gap: .3rem .8rem; }
#action-bar > .sdprep-summary { flex: 1 1 18rem; min-width: 0; }
#action-bar .sdprep-summary p { margin: 0; font-size: .92em; line-height: 1.35; }
#action-bar > .sdprep-action-buttons { flex: 0 1 auto; width: auto; flex-wrap: nowrap; gap: .4rem; }
#action-bar > .sdprep-action-buttons > button { flex: 0 1 auto; min-width: 0 !important; white-space: nowrap; }
html { scroll-padding-bottom: 7rem; }
/* Gradio's container hides overflow, which makes it a scroll box and keeps `sticky` from working: clip instead. */
.gradio-container { overflow: clip !important; }
/* A long model id ends before the dropdown's arrow, not under it. */
.sdprep-model input { text-overflow: ellipsis; padding-right: 2.2rem; }
/* An id is long: where the column is narrow, the family goes below the model rather than squeezing it. */
.block.sdprep-model { min-width: min(19rem, 100%) !important; flex: 3 1 19rem !important; }
.block.sdprep-family { min-width: min(11rem, 100%) !important; flex: 2 1 11rem !important; }
#model-fix { align-self: flex-start; width: auto; }
/* Paths and ids break where they may (after / \ - and _), never past the window. */
code { overflow-wrap: anywhere; }
#derived code, #build-result code, .sdprep-hint code { word-break: normal; white-space: normal; }
/* Rows of switches wrap instead of clipping their labels. */
.sdprep-wrap, .sdprep-wrap > .form { flex-wrap: wrap !important; }
.sdprep-wrap > .form > .block { flex: 1 1 11rem !important; min-width: 11rem !important; }
/* Code in the banner's sentences stays inline text. */
.sdprep-banner code { display: inline; white-space: normal; }
/* Phones: no column reaches past the window, tables become stacked name / value lines. */
/* Less margin on a phone (outside @media: Gradio scopes rules inside one to the page's content, below this box). */
.gradio-container > .main { padding-left: clamp(.6rem, 4vw - .4rem, 2rem) !important;
  padding-right: clamp(.6rem, 4vw - .4rem, 2rem) !important; }
@media (max-width: 640px) {
  #derived table, #library table, #environment table, #estimate table, #build-result table,
  #derived tbody, #library tbody, #environment tbody, #estimate tbody, #build-result tbody,
  #derived tr, #library tr, #environment tr, #estimate tr, #build-result tr { display: block; width: 100%; }
  #derived thead, #library thead, #environment thead, #estimate thead, #build-result thead { display: none; }
  #derived td, #library td, #environment td, #estimate td, #build-result td,
  #derived th, #library th, #environment th, #estimate th, #build-result th {
    display: block; width: auto !important; border: none; padding: .05rem .2rem; white-space: normal !important; }
  #derived tr, #library tr, #environment tr, #estimate tr, #build-result tr {
    border-bottom: 1px solid var(--border-color-primary); padding: .25rem 0; }
  #derived td:first-child, #library td:first-child, #environment td:first-child, #estimate td:first-child,
  #build-result td:first-child { font-weight: 600; font-size: .9em; color: var(--body-text-color-subdued); }
  #yaml-preview .cm-gutters { display: none; }  /* wrapped lines make the line numbers meaningless */
  #action-bar { padding: .3rem .4rem; gap: .2rem; }
  #action-bar .sdprep-summary p { font-size: .85em; }
  /* Side by side, each at least as wide as its longest word: a label breaks between words, never inside one, and
     the buttons go to a second row before a word would be cut. */
  #action-bar > .sdprep-action-buttons { width: 100%; gap: .3rem; flex-wrap: wrap; }
  #action-bar > .sdprep-action-buttons > button { flex: 1 1 0; min-width: min-content !important;
    padding: .35rem .3rem; white-space: normal; overflow-wrap: normal; word-break: normal; hyphens: manual;
    line-height: 1.15; font-size: .95em; }
}
"""
