process.stdout.write("socketbridge-operator: not written yet\n");
