"""Engine builds: a child process per build, its protocol, the proof and the manifest."""
