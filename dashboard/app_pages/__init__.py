"""The dashboard's pages (thin: widgets and layout; every computation is a core call)."""
