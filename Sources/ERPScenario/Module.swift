// ERPScenario
