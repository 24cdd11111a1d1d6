"""antiphon.gui: the PyQt6 panel; reads antiphon.plugin's snapshots, writes parameters through its Controls,
never touches a port or the model. Imports antiphon.plugin and antiphon.engine."""
