"""HTTP concerns of the ASGI app beside Streamlit: security headers and the vendored files."""
