"""One module per sentiment method; `sentiment.services.analyze_message` dispatches to them."""
