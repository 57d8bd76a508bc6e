"""Database backends: Django's, with what Lia needs on top (`lia.db.postgresql`)."""
