"""One module per section of the page: `render(form, ...)` creates its components, `listen(form, ...)` wires them."""
