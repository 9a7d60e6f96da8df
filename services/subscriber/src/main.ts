process.stdout.write("socketsub: not written yet\n");
