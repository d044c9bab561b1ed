"""What every service runs on and no service owns: the ASGI server and its command, settings
from the environment, the SQLite/PostgreSQL connection helpers, the pool of worker processes
commits are checked in, and the progress bar of long commands. It imports `atcore` and no
service; the services import it; the `skyloft` command line sits above them all."""
