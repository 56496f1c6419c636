"""aiohttp plumbing shared by every HTTP edge: errors, body decoding, fields, auth, signing."""
