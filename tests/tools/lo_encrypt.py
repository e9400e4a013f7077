"""Save a text or CSV file as a password-protected OpenDocument file with LibreOffice, as a
teacher does with File > Save As > "Save with password". Runs under the system python3,
which has LibreOffice's UNO bridge (Debian python3-uno).

usage: lo_encrypt.py SOURCE TARGET PASSWORD    (TARGET .odt or .ods)
"""

import subprocess
import sys
import time
import uuid
from pathlib import Path

import uno
from com.sun.star.beans import PropertyValue


def prop(name, value):
    p = PropertyValue()
    p.Name, p.Value = name, value
    return p


def main():
    source, target, password = Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve(), sys.argv[3]
    pipe = f"mailguard-{uuid.uuid4().hex}"
    profile = target.parent / f".lo-profile-{pipe}"
    office = subprocess.Popen(["soffice", "--headless", "--invisible", "--norestore",
                               f"-env:UserInstallation=file://{profile}",
                               f"--accept=pipe,name={pipe};urp;"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        resolver = uno.getComponentContext().ServiceManager.createInstanceWithContext(
            "com.sun.star.bridge.UnoUrlResolver", uno.getComponentContext())
        deadline = time.monotonic() + 60
        while True:
            try:
                context = resolver.resolve(
                    f"uno:pipe,name={pipe};urp;StarOffice.ComponentContext")
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.25)
        desktop = context.ServiceManager.createInstanceWithContext(
            "com.sun.star.frame.Desktop", context)
        options = [prop("Hidden", True)]
        if source.suffix == ".csv":
            options += [prop("FilterName", "Text - txt - csv (StarCalc)"),
                        prop("FilterOptions", "44,34,76,1")]
        document = desktop.loadComponentFromURL(source.as_uri(), "_blank", 0, tuple(options))
        kind = "calc8" if target.suffix == ".ods" else "writer8"
        document.storeToURL(target.as_uri(), (prop("FilterName", kind),
                                              prop("Password", password)))
        document.close(True)
    finally:
        office.terminate()
        office.wait(30)
        subprocess.run(["rm", "-rf", str(profile)], check=False)


if __name__ == "__main__":
    main()
