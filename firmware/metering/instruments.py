# The load's power and the supply voltage, from what this meter can measure:
#   - a meter that samples the waveform (metering source "adc" or "both"):
#     the ADC's Vrms and real power;
#   - a pulse meter: power from the CF pulse interval (pulse_power.py) and
#     voltage from the metering IC's CF1 output (cf1.py) where the board has
#     one and it is calibrated; otherwise the voltage is unknown (None).
# Protection acts only on values that are known; screens show "--" for None.
from firmware.metering.pulse_power import PulsePower


class Instruments:
    def __init__(self, imp_per_kwh, pulse_count, cf1_count, now_ms, cf1_mhz_per_v=None,
                 timeout_s=300):
        self.power_w = 0
        self.voltage_v = None
        self.pulse_power = PulsePower(imp_per_kwh, pulse_count, now_ms, timeout_s * 1000)
        self.cf1 = None
        if cf1_count is not None and cf1_mhz_per_v:
            from firmware.metering.cf1 import Cf1Voltage
            self.cf1 = Cf1Voltage(cf1_mhz_per_v, cf1_count, now_ms)

    def update(self, now_ms, pulse_count, cf1_count, adc, relay_closed):
        """One tick's reading; adc is the waveform Analyzer or None."""
        if adc is not None:
            self.voltage_v = adc.vrms_mv // 1000
            self.power_w = adc.p_mw // 1000
            return
        self.power_w = self.pulse_power.update(pulse_count, now_ms, relay_closed)
        if self.cf1 is not None and cf1_count is not None:
            self.voltage_v = self.cf1.update(cf1_count, now_ms)
        else:
            self.voltage_v = None
