"""The studio page: index.html, studio.css, studio.js (a package only so that wheels ship these files)."""
