"""A real Orthanc (Debian's `orthanc` with its `orthanc-dicomweb` plugin) for the PACS tests: a private
configuration on free ports, private storage, HTTP authentication on, DICOMweb at /dicom-web. Where Orthanc or
the plugin is not installed the tests that need it are skipped with the reason, unless CXR_AGE_REQUIRE_PACS is
set (CI sets it once it has installed them), where they fail instead."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from helpers import free_ports

PLUGIN_DIRS = (Path("/usr/share/orthanc/plugins"), Path("/usr/lib/orthanc"))
USER, PASSWORD = "cxr-age-test", "not-a-real-secret-0451"
AET = "ORTHANC"


def _plugin() -> Path | None:
    for folder in PLUGIN_DIRS:
        found = sorted(folder.glob("libOrthancDicomWeb.so*"))
        if found:
            return found[0]
    return None


def dcmtk(tool: str) -> str | None:
    """dcmtk's `tool` on PATH, passing over the virtual environment's folder, where pynetdicom installs Python
    programs of the same names (`storescu`, `echoscu`) that take other options."""
    own = Path(sys.executable).parent.resolve()
    folders = [folder for folder in os.environ.get("PATH", "").split(os.pathsep)
               if folder and Path(folder).resolve() != own]
    return shutil.which(tool, path=os.pathsep.join(folders))


def require_tools(*tools: str) -> None:
    """Skip (or fail, under CXR_AGE_REQUIRE_PACS) unless Orthanc, its DICOMweb plugin and the dcmtk `tools` are
    here."""
    missing = [name for name in ("Orthanc", *tools) if dcmtk(name) is None]
    if _plugin() is None:
        missing.append("the orthanc-dicomweb plugin")
    if missing:
        reason = f"needs {', '.join(missing)} (apt install orthanc orthanc-dicomweb dcmtk dicom3tools)"
        if os.environ.get("CXR_AGE_REQUIRE_PACS"):
            pytest.fail(reason)
        pytest.skip(reason)


class OrthancServer:
    """One Orthanc process; `stop` and `start` keep its storage, as a PACS restart would."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.http_port, self.dicom_port = free_ports(2)
        storage = folder / "storage"
        storage.mkdir(parents=True, exist_ok=True)
        config = {"Name": "cxr-age-test", "StorageDirectory": str(storage), "IndexDirectory": str(storage),
                  "HttpPort": self.http_port, "DicomPort": self.dicom_port, "DicomAet": AET,
                  "RemoteAccessAllowed": False, "AuthenticationEnabled": True, "RegisteredUsers": {USER: PASSWORD},
                  "Plugins": [str(_plugin())], "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
                  "HttpServerThreads": 8, "StableAge": 1}
        self.config = folder / "orthanc.json"
        self.config.write_text(json.dumps(config))
        self.process: subprocess.Popen | None = None
        self.session = requests.Session()
        self.session.auth = (USER, PASSWORD)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb(self) -> str:
        return f"{self.url}/dicom-web"

    @property
    def node(self) -> str:
        return f"{AET}@127.0.0.1:{self.dicom_port}"

    def start(self) -> None:
        with open(self.folder / "orthanc.log", "a") as log:
            self.process = subprocess.Popen(["Orthanc", str(self.config)], stdout=log, stderr=subprocess.STDOUT,
                                            cwd=self.folder)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if self.session.get(f"{self.url}/system", timeout=2).ok:
                    return
            except requests.ConnectionError:
                time.sleep(0.2)
        raise RuntimeError(f"Orthanc did not start; its log:\n{(self.folder / 'orthanc.log').read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)

    def upload(self, path: Path) -> None:
        answer = self.session.post(f"{self.url}/instances", data=path.read_bytes(), timeout=30)
        answer.raise_for_status()

    def instances(self, modality: str | None = None) -> list[dict]:
        """Every stored instance's main tags, optionally only those of one modality."""
        found = self.session.post(f"{self.url}/tools/find", json={"Level": "Instance", "Expand": True, "Query": {}},
                                  timeout=30).json()
        tags = [self.session.get(f"{self.url}/instances/{i['ID']}/simplified-tags", timeout=30).json()
                for i in found]
        return [t for t in tags if modality is None or t.get("Modality") == modality]

    def file(self, sop_instance_uid: str) -> bytes:
        found = self.session.post(f"{self.url}/tools/find", json={"Level": "Instance", "Query": {
            "SOPInstanceUID": sop_instance_uid}}, timeout=30).json()
        return self.session.get(f"{self.url}/instances/{found[0]}/file", timeout=30).content

    def wait_for(self, modality: str, count: int, timeout: float = 120) -> list[dict]:
        """Poll until `count` instances of `modality` are stored (the listener delivers in the background)."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.instances(modality)
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.5)
