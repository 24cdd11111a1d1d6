"""antiphon.plugin: ports, the clock follower, the timed sender and the live runner; owns every thread and
port. Imports antiphon.engine only."""
