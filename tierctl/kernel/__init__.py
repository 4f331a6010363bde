"""Real kernel adapters: procfs, cgroupfs, NUMA topology and the page mover, each rooted at a path."""
