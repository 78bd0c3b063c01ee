"""The web page served at GET /: plain HTML, CSS and JavaScript, vendored here (no build step, no CDN)."""
