"""What every service runs on and no service owns: the ASGI server and its command, settings
from the environment, and the SQLite/PostgreSQL connection helpers. It imports `atcore` and
no service; the services import it; the `skyloft` command line sits above them all."""
