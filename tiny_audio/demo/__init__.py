"""`ta demo`: a local web page to upload or record speech and read what a model hears."""
