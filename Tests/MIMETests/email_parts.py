#!/usr/bin/env python3
"""Python's own MIME parser as an independent judge of signing preparation: prints, for a
message file, its parts as Python's `email` sees them (content type, and a digest of the decoded
content with line ends made LF), one line each.
    email_parts.py FILE"""

import hashlib
import sys
from email import message_from_bytes

message = message_from_bytes(open(sys.argv[1], "rb").read())
for part in message.walk():
    if part.is_multipart():
        print(f"multipart {part.get_content_type()} {len(part.get_payload())}")
        continue
    payload = part.get_payload(decode=True)
    if payload is None:  # message/rfc822 and the like: their parts follow in walk()
        print(part.get_content_type())
        continue
    content = payload.replace(b"\r\n", b"\n")
    print(f"{part.get_content_type()} {hashlib.sha256(content).hexdigest()[:16]}")
