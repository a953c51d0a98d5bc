# THE pin map of the ESP32 meter board (ESP32-WROOM-32, no PSRAM).
# boards/esp32.py takes every GPIO number, peripheral id and active level from
# here, so a board revision changes this one file.
#
# Pins kept free on purpose: 1/3 (UART0, the REPL and technician console),
# 6-11 (the module's SPI flash), and the strapping pins 0, 2 and 12 (their
# level at reset selects boot mode and flash voltage; anything wired to them
# can stop the board booting). The fourth, 15, only selects the boot log: it
# takes the CF1 input (below). 34-39 are inputs only and have no internal
# pulls, so each input placed there has its pull resistor on the board.
from micropython import const

# --- metering front end -------------------------------------------------------
# CF output of the metering IC (one pulse per 1/imp_per_kwh kWh), counted in
# hardware by PCNT unit PULSE_PCNT_UNIT; 10k pull-up on the board.
PULSE_CF = const(34)
PULSE_PCNT_UNIT = const(0)
# CF1 output of the same BL0937/HLW8012-class IC: a square wave whose
# frequency is proportional to Vrms while the IC's SEL input selects voltage.
# SEL is strapped to that level on the board (power comes from CF, so the
# current output is never needed and no GPIO drives SEL). Counted by PCNT
# unit CF1_PCNT_UNIT. GPIO15 is a strapping pin, but its level at reset only
# chooses whether the ROM prints its boot log (like GPIO5, the LCD's CS): a
# toggling CF1 cannot stop the board booting. None on a model without CF1:
# the supply voltage is then unknown to the firmware.
CF1 = const(15)
CF1_PCNT_UNIT = const(1)
# Voltage and current channels, biased at mid-rail. ADC1 only: ADC2 is taken
# by the radio driver whenever WiFi/BT is up.
ADC_VOLTAGE = const(36)        # SENSOR_VP, ADC1 channel 0: mains divider
ADC_CURRENT = const(39)        # SENSOR_VN, ADC1 channel 3: shunt amplifier / CT burden
ADC_TIMER_ID = const(0)        # hardware timer 0 paces the samples
CONSOLE_TIMER_ID = const(1)    # hardware timer 1: the technician statement's time budget

# --- load switch --------------------------------------------------------------
# Bistable (latching) relay with two coils, each switched by a low-side driver:
# a pulse on one coil closes the contacts, on the other opens them; with both
# drivers off the contacts stay where they are, also across a power cut.
RELAY_CLOSE_COIL = const(26)
RELAY_OPEN_COIL = const(27)
RELAY_COIL_ON = const(1)       # driver input level that energises a coil

# --- user interface -----------------------------------------------------------
BUZZER = const(25)             # piezo through a transistor, driven by LEDC PWM
BUTTON_QUERY = const(4)        # push button to GND, internal pull-up
BUTTON_DOWN_LEVEL = const(0)   # level read while the button is pressed
# 128x64 ST7565/UC1701-class LCD on VSPI (hardware SPI id 2, its default
# SCK/MOSI pins, so the bus needs no GPIO matrix detour); write-only.
LCD_SPI_ID = const(2)
LCD_SCK = const(18)
LCD_MOSI = const(23)
LCD_CS = const(5)              # chip select, active low
LCD_DC = const(19)             # A0 / RS: 0 = command, 1 = display data
LCD_RST = const(22)            # reset, active low
LCD_BACKLIGHT = const(21)      # LED driver enable
BACKLIGHT_ON_LEVEL = const(1)

# Keypad for offline tokens (docs/tokens.md): a 4x3 matrix (rows 1-2-3,
# 4-5-6, 7-8-9, *-0-#) on a PCF8574 I2C expander, rows on P0-P3, columns on
# P4-P6 (boards/esp32.py scans it). This board revision has no GPIO left
# for its bus: every pin above is taken, and the free ones are the
# strapping pins and the console's. A revision that frees two GPIOs sets
# them here (SCL, SDA; the expander module has the pull-ups); None: no keypad,
# tokens come through the server's token command.
KEYPAD_I2C_ID = const(0)
KEYPAD_SCL = None
KEYPAD_SDA = None

# --- supervision --------------------------------------------------------------
# Terminal-cover switch: closed to GND while the cover is on, so the line is
# pulled high when the cover is opened. None when a model has no switch.
TAMPER = const(33)
TAMPER_OPEN_LEVEL = const(1)
# Open-drain output of the supply supervisor, watching the DC rail upstream of
# the hold-up capacitor: it falls some tens of ms before the 3.3 V rail does.
# 10k pull-up on the board (GPIO35 has no internal pull).
POWER_FAIL = const(35)
POWER_FAIL_LEVEL = const(0)    # level while the supply is failing

# --- LTE modem ----------------------------------------------------------------
# UART2 on its default pins; no hardware flow control on this board revision.
MODEM_UART_ID = const(2)
MODEM_TX = const(17)           # ESP32 TX -> modem RXD
MODEM_RX = const(16)           # modem TXD -> ESP32 RX
MODEM_BAUD = const(115200)
# Load switch on the modem's supply (1 = powered). Held off through reset, so
# the pins below cannot disturb an unpowered modem while the ESP32 boots
# (GPIO14 toggles briefly at boot).
MODEM_POWER = const(13)
# PWRKEY and RESET go through NPN inverters: the level given here is the GPIO
# level, and GPIO high pulls the modem's line low. The modem driver owns the
# timing and the polarity of what it asks for.
MODEM_PWRKEY = const(32)
MODEM_RESET = const(14)
