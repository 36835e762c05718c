"""Uploads a file to coffer with tuspy (the Python tus client), sha1 checksum per chunk.

Usage: tuspy_upload.py ENDPOINT TOKEN PATH FILENAME; prints the upload's URL.
"""
import sys

from tusclient import client

endpoint, token, path, filename = sys.argv[1:5]
tus = client.TusClient(endpoint, headers={"Authorization": f"Bearer {token}"})
uploader = tus.uploader(
    path,
    chunk_size=3 * 1024 * 1024,
    metadata={"category": "reports", "filename": filename},
    upload_checksum=True,
)
uploader.upload()
print(uploader.url)
