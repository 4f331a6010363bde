"""The running controller: the loop on the real kernel, and (later) the daemon and its API."""
