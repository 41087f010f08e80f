"""The web dashboard at /ui/ (docs/dashboard.md): HTML pages over the same service layer as the
REST API, signed in with a token once, then a session cookie; a little vendored JavaScript
makes them live, and every form works without it."""
