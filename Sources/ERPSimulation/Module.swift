// ERPSimulation
