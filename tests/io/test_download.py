"""Downloading into the cache from a local HTTP server on 127.0.0.1."""

import functools
import http.server
import threading

import pytest
import torch

from mae_seg.convert import convert_checkpoint
from mae_seg.errors import CheckpointError, CheckpointNotFoundError
from mae_seg.io import cached_path, default_cache_dir, download_checkpoint


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves a directory; ``/short/NAME`` announces more bytes than it sends."""

    requests: list

    def do_GET(self):
        self.requests.append(self.path)
        if self.path.startswith('/short/'):
            body = b'PK\x03\x04' + b'\0' * 96
            self.send_response(200)
            self.send_header('Content-Length', str(len(body) * 10))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    """``(base_url, served_dir, requests)`` of a server in a thread, on loopback only."""
    served = tmp_path / 'served'
    served.mkdir()
    requests = []
    handler = type('Handler', (_Handler,), {'requests': requests})
    httpd = http.server.ThreadingHTTPServer(
        ('127.0.0.1', 0), functools.partial(handler, directory=str(served))
    )
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f'http://127.0.0.1:{httpd.server_address[1]}', served, requests
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def _cache_files(cache):
    return sorted(p.name for p in cache.rglob('*') if p.is_file())


def test_download_once_then_from_the_cache(server, official_checkpoint, tmp_path):
    base, served, requests = server
    (served / 'mae.pth').write_bytes(official_checkpoint[0].read_bytes())
    cache = tmp_path / 'cache'
    url = f'{base}/mae.pth'
    first = convert_checkpoint(url, cache_dir=cache)
    again = convert_checkpoint(url, cache_dir=cache)
    assert requests == ['/mae.pth']
    assert cached_path(url, cache).read_bytes() == official_checkpoint[0].read_bytes()
    assert _cache_files(cache) == ['mae.pth']
    assert first.layout == again.layout == 'official'
    assert first.source == url
    torch.testing.assert_close(again.state_dict['pos_embed'], first.state_dict['pos_embed'])


def test_same_file_names_from_different_urls_do_not_collide(tmp_path):
    first = cached_path('https://a.example/x/resolve/main/model.safetensors', tmp_path)
    second = cached_path('https://a.example/y/resolve/main/model.safetensors', tmp_path)
    assert first.name == second.name == 'model.safetensors'
    assert first != second and first.parent.parent == tmp_path


def test_cache_dir_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path))
    assert default_cache_dir() == tmp_path / 'mae_seg' / 'checkpoints'
    monkeypatch.delenv('XDG_CACHE_HOME')
    monkeypatch.setenv('HOME', str(tmp_path / 'home'))
    assert default_cache_dir() == tmp_path / 'home' / '.cache' / 'mae_seg' / 'checkpoints'


@pytest.mark.parametrize(
    'name, content, error, message',
    [
        ('missing.pth', None, CheckpointNotFoundError, r'missing\.pth does not exist \(HTTP 404\)'),
        ('page.html', b'<html>login</html>', CheckpointError, 'did not return a checkpoint file'),
        ('short/mae.pth', None, CheckpointError, 'stopped after 100 of 1000 bytes'),
    ],
)
def test_failed_downloads_leave_nothing_in_the_cache(
    server, tmp_path, name, content, error, message
):
    base, served, _ = server
    if content is not None:
        (served / name).write_bytes(content)
    cache = tmp_path / 'cache'
    with pytest.raises(error, match=message):
        download_checkpoint(f'{base}/{name}', cache, progress=False)
    assert _cache_files(cache) == []


def test_unreachable_server(tmp_path):
    with pytest.raises(CheckpointError, match='cannot be downloaded: .*refused'):
        download_checkpoint('http://127.0.0.1:9/mae.pth', tmp_path, progress=False, timeout=5)
