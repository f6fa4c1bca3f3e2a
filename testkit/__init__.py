"""What the tests and the benchmark share: where things are, the suite's one timeout and the machine factor, starting
and ending processes, the app launcher and the two ways of speaking to its page (gradio_client by component name,
and the page's own queue protocol).

Nothing here is product code: the app never imports it. It imports the app only where a test needs the app's own
words (`said`) or defaults.
"""
