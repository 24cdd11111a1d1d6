"""The PyQt6 control panel: reads snapshots, writes parameters, never touches a port or the model."""
