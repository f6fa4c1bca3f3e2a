"""Text and HTML the server composes for the page, as pure functions of core objects and a language (no components,
no events), so they are tested without a server. Every sentence comes from sdprep.text."""
